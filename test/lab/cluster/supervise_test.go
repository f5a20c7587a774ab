package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSuperviseRestartsWithBackOff: a command that exits is run again
// after the back-off, each run's pid is recorded, and cancelling stops the
// supervisor without another run.
func TestSuperviseRestartsWithBackOff(t *testing.T) {
	defer func(i, m time.Duration) { restartInitial, restartMax = i, m }(restartInitial, restartMax)
	restartInitial, restartMax = 20*time.Millisecond, 40*time.Millisecond
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	pidfile := filepath.Join(dir, "x.child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Supervise(ctx, pidfile, []string{"sh", "-c", "echo $$ >> " + runs + "; exit 3"}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(runs)
		if n := len(strings.Fields(string(data))); n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs after 5s: %q", data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pid, _ := os.ReadFile(pidfile)
	data, _ := os.ReadFile(runs)
	if fields := strings.Fields(string(data)); len(strings.TrimSpace(string(pid))) == 0 || !strings.Contains(string(data), strings.TrimSpace(string(pid))) || fields[0] == fields[1] {
		t.Errorf("pid file %q, runs %q: want each run's own pid recorded", pid, data)
	}
}
