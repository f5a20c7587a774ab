package cluster

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// HTTPGet fetches a URL from inside a namespace with a short timeout, as a
// client on that host would.
func (l *Lab) HTTPGet(ctx context.Context, ns, url string) (string, error) {
	return l.Exec(ctx, ns, "curl", "-sS", "--max-time", "3", "-g", url)
}

// ProbeRun is a client loop running in one of the lab's namespaces.
type ProbeRun struct {
	cmd *exec.Cmd
	out *strings.Builder
}

// StartProbe starts the lab's client loop (a new TCP connection to url
// every interval) in namespace ns.
func (l *Lab) StartProbe(ns, url string, interval time.Duration) (*ProbeRun, error) {
	out := &strings.Builder{}
	cmd := exec.Command("ip", "netns", "exec", ns, l.LabBinary, "probe", "--url", url, "--interval", interval.String())
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &ProbeRun{cmd: cmd, out: out}, nil
}

// Stop ends the loop and returns its output, for probe.Parse.
func (p *ProbeRun) Stop() string {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	return p.out.String()
}
