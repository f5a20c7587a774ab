// Package probe is the lab's client loop: it opens a new TCP connection to
// a URL at a fixed interval and records when each attempt succeeded, so
// that failover tests measure outages as a client sees them.
package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Attempt is one request.
type Attempt struct {
	Start time.Time
	OK    bool
	// Body is the first line the server answered, when OK.
	Body string
	// Why says how the attempt failed, when it did: "timeout", "refused",
	// "reset", "unreachable", "status N" or the error's text.
	Why string
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
			resp, err := client.Get(url)
			switch {
			case err != nil:
				body = failure(err)
			case resp.StatusCode != http.StatusOK:
				resp.Body.Close()
				body = fmt.Sprintf("status %d", resp.StatusCode)
			default:
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				status, body = "ok", strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
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
			if a.OK {
				a.Body = f[2]
			} else {
				a.Why = f[2]
			}
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

// failure names how a request failed, in one word where it can: a test
// that sees a failure must tell a slow answer from a refused or reset
// connection.
func failure(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// Describe lists the failed attempts, each with its time after the first
// attempt and how it failed, for a test's message.
func Describe(attempts []Attempt) string {
	if len(attempts) == 0 {
		return "no attempts"
	}
	var parts []string
	for _, a := range attempts {
		if !a.OK {
			parts = append(parts, fmt.Sprintf("+%s %s", a.Start.Sub(attempts[0].Start).Round(time.Millisecond), a.Why))
		}
	}
	if len(parts) == 0 {
		return "none failed"
	}
	return strings.Join(parts, ", ")
}

// Unexplained returns the failed attempts, leaving out at most handovers
// reset connections. When an address moves to another node, the client's
// neighbour entry moves to the new owner's MAC: a connection it had open
// through the old node at that instant goes on at the new node, whose
// kube-proxy has no state for it, and is reset. New connections are not
// affected. A failure of any other kind, or more resets than the address
// moved, is returned.
func Unexplained(attempts []Attempt, handovers int) []Attempt {
	var out []Attempt
	for _, a := range attempts {
		if a.OK {
			continue
		}
		if a.Why == "reset" && handovers > 0 {
			handovers--
			continue
		}
		out = append(out, a)
	}
	return out
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
