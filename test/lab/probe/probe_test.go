package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRunSaysHowAttemptsFail runs the client loop against servers that
// answer, answer late, answer 503 and are not there, and reads its output
// back as a failover test does.
func TestRunSaysHowAttemptsFail(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pod=a\nmore")) }))
	defer ok.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer unavailable.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/"
	l.Close()

	for _, c := range []struct {
		url, want string
		ok        bool
	}{
		{ok.URL, "pod=a", true},
		{slow.URL, "timeout", false},
		{unavailable.URL, "status 503", false},
		{closed, "refused", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		var out strings.Builder
		Run(ctx, c.url, 100*time.Millisecond, 100*time.Millisecond, &out)
		cancel()
		attempts, err := Parse(strings.NewReader(out.String()))
		if err != nil || len(attempts) < 2 {
			t.Fatalf("%s: %d attempts, %v:\n%s", c.url, len(attempts), err, out.String())
		}
		for _, a := range attempts {
			got := a.Body
			if !a.OK {
				got = a.Why
			}
			if a.OK != c.ok || got != c.want {
				t.Errorf("%s: ok=%v %q, want ok=%v %q", c.url, a.OK, got, c.ok, c.want)
			}
		}
		if failed := Failures(attempts); c.ok == (failed > 0) {
			t.Errorf("%s: %d failures: %s", c.url, failed, Describe(attempts))
		}
	}
}

func TestUnexplained(t *testing.T) {
	at := func(ok bool, why string) Attempt { return Attempt{OK: ok, Why: why} }
	attempts := []Attempt{at(true, ""), at(false, "reset"), at(true, ""), at(false, "reset"), at(false, "timeout")}
	for _, c := range []struct {
		handovers int
		want      []string
	}{
		{0, []string{"reset", "reset", "timeout"}},
		{1, []string{"reset", "timeout"}},
		{3, []string{"timeout"}},
	} {
		var got []string
		for _, a := range Unexplained(attempts, c.handovers) {
			got = append(got, a.Why)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%d hand-overs: %v, want %v", c.handovers, got, c.want)
		}
	}
}
