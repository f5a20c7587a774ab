package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HoldResult is what Hold measured: of Conns long-lived connections, how
// many were Kept (every request answered on the connection first opened)
// to the end.
type HoldResult struct {
	Conns, Kept int
}

// Hold opens conns HTTP keep-alive connections to url, each sending a
// request every interval on its one connection, for duration. A
// connection is kept if it never fails and never has to be opened again
// (a reset, a timeout or a closed connection counts against it): what a
// long-lived client of a load balancer sees of a failover.
func Hold(ctx context.Context, url string, conns int, interval, duration time.Duration) HoldResult {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var kept atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dials atomic.Int64
			d := &net.Dialer{Timeout: time.Second}
			client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
				MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					return d.DialContext(ctx, network, addr)
				},
			}}
			ok := true
			t := time.NewTicker(interval)
			defer t.Stop()
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				if err != nil {
					if ctx.Err() == nil {
						ok = false
					}
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = ok && resp.StatusCode == http.StatusOK
				}
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
			if ok && dials.Load() == 1 {
				kept.Add(1)
			}
		}()
	}
	wg.Wait()
	return HoldResult{Conns: conns, Kept: int(kept.Load())}
}

// String is "kept/conns".
func (r HoldResult) String() string { return fmt.Sprintf("%d/%d", r.Kept, r.Conns) }
