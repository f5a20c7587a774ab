// Package probe is the lab's client loop: it opens a new TCP connection to
// a URL at a fixed interval and records when each attempt succeeded, so
// that failover tests measure outages as a client sees them.
package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Attempt is one request.
type Attempt struct {
	Start time.Time
	OK    bool
	// Body is the first line the server answered, when OK.
	Body string
}

// Run starts a request to url every interval, each on a new connection
// with the given timeout and without waiting for the previous one (a slow
// or failed attempt does not delay the next), until ctx is done. It writes
// one line per attempt to w, in start order:
// "<unix nanos> ok|fail <first line of the body>".
func Run(ctx context.Context, url string, interval, timeout time.Duration, w io.Writer) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lines []chan string
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		start := time.Now()
		line := make(chan string, 1)
		lines = append(lines, line)
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := "fail", ""
			if resp, err := client.Get(url); err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					status, body = "ok", strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
				}
			}
			line <- fmt.Sprintf("%d %s %s\n", start.UnixNano(), status, body)
		}()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	wg.Wait()
	for _, l := range lines {
		fmt.Fprint(w, <-l)
	}
}

// Parse reads Run's output.
func Parse(r io.Reader) ([]Attempt, error) {
	var out []Attempt
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) < 2 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad probe line %q", sc.Text())
		}
		a := Attempt{Start: time.Unix(0, ns), OK: f[1] == "ok"}
		if len(f) == 3 {
			a.Body = f[2]
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// Outage measures the outage that a fault at t caused: from t to the start
// of the first successful attempt after the first failed one. Attempts
// that still succeed just after t (before the fault took effect) do not
// end the outage. It also returns the failed attempts; with none, the
// outage is zero. ok is false if no attempt succeeded after the failures.
func Outage(attempts []Attempt, t time.Time) (time.Duration, int, bool) {
	failed := 0
	for _, a := range attempts {
		if a.Start.Before(t) {
			continue
		}
		if !a.OK {
			failed++
			continue
		}
		if failed > 0 {
			return a.Start.Sub(t), failed, true
		}
	}
	return 0, failed, failed == 0
}

// Failures counts the failed attempts.
func Failures(attempts []Attempt) int {
	n := 0
	for _, a := range attempts {
		if !a.OK {
			n++
		}
	}
	return n
}
