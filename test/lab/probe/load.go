package probe

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is what Load measured.
type LoadResult struct {
	OK, Failed int64
	Elapsed    time.Duration
}

// RPS is the successful requests per second.
func (r LoadResult) RPS() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// Load sends requests to url from concurrency workers for duration, and
// counts them. With keepAlive each worker keeps one connection, so the
// figure is the path's cost per packet; without, every request opens a
// new TCP connection, which also costs connection tracking and NAT setup,
// and leaves TIME_WAIT sockets that slow later runs to the same server.
func Load(ctx context.Context, url string, concurrency int, duration, timeout time.Duration, keepAlive bool) LoadResult {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: concurrency}}
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return LoadResult{OK: ok.Load(), Failed: failed.Load(), Elapsed: time.Since(start)}
}
