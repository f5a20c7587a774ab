package cluster

import (
	"context"
	"os/exec"
	"regexp"
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
// every interval) in namespace ns. An attempt fails when no answer came
// within 200 ms: failover tests measure outages to that precision.
func (l *Lab) StartProbe(ns, url string, interval time.Duration) (*ProbeRun, error) {
	return l.StartProbeTimeout(ns, url, interval, 200*time.Millisecond)
}

// StartProbeTimeout is StartProbe with another per-request timeout: tests
// that assert no request fails while the machine is busy (an upgrade
// starting every pod at once on two cores) count a late answer as
// answered, and only a missing one, a refused or a reset connection as
// failed.
func (l *Lab) StartProbeTimeout(ns, url string, interval, timeout time.Duration) (*ProbeRun, error) {
	out := &strings.Builder{}
	cmd := exec.Command("ip", "netns", "exec", ns, l.LabBinary, "probe", "--url", url, "--interval", interval.String(), "--timeout", timeout.String())
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

var (
	arpingMAC = regexp.MustCompile(`\[([0-9A-Fa-f:]{17})\]`)
	ndisc6MAC = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]{17})`)
)

// LANMACs asks the LAN, from the client host, which MACs answer for ip:
// iputils' arping (three requests) for IPv4, ndisc6 (three solicitations,
// every answer kept) for IPv6. Both are strict judges that are not Pharos:
// ndisc6, for one, drops a Neighbor Advertisement not sent from the target
// address. It returns the upper-case MACs and the tool's output.
func (l *Lab) LANMACs(ctx context.Context, ip string) (map[string]bool, string) {
	argv := []string{"arping", "-c", "3", "-w", "3", "-I", "eth0", ip}
	re := arpingMAC
	if strings.Contains(ip, ":") {
		argv = []string{"ndisc6", "-m", "-n", "-r", "3", "-w", "500", ip, "eth0"}
		re = ndisc6MAC
	}
	out, _ := l.Exec(ctx, l.Client.Name, argv...) // no answer is an empty set
	macs := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		macs[strings.ToUpper(m[1])] = true
	}
	return macs, out
}
