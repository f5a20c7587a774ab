package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

// stressReport is what the stress run saw.
type stressReport struct {
	// Moves counts the times the MAC answering ARP for the address, as
	// the client sees it, changed: each is a failover.
	Moves int
	// MACs are the distinct MACs that answered.
	MACs []string
	// Requests and Failed count the client's requests to the address; a
	// request fails when no answer came within requestTimeout, or the
	// connection was refused or reset.
	Requests, Failed int
	// ControlRequests and ControlFailed count the same client's requests,
	// at the same pace, to the Service's NodePort on the announcing node:
	// the same lossy link and the same backends without Pharos, so the
	// failures the network alone causes.
	ControlRequests, ControlFailed int
	// Pauses counts the speaker's SIGSTOP/SIGCONT pauses.
	Pauses int
	// Owner and OwnerAfter are the announcing node before and after, by
	// the Service's status.
	Owner, OwnerAfter string
}

// requestTimeout lets TCP retransmit a lost SYN or SYN-ACK four times (at
// 1, 3, 7 and 15 s) on the lossy link, which each handshake crosses four
// times: the client fails a request only when the connection cannot be
// made at all.
const requestTimeout = 16 * time.Second

// stress puts the announcing node under cluster.StressNode for d (a CPU
// hog on every core, 5 % loss and 20 ms of jitter both ways on its link,
// its speaker paused 100 ms about every second). From the client, ARP for
// the address every 50 ms and an HTTP request every 20 ms judge whether
// the address ever moved and whether a request failed.
func (b *bench) stress(d time.Duration, seed int64) (stressReport, error) {
	var r stressReport
	l := b.l
	if err := b.waitServing(30 * time.Second); err != nil {
		return r, err
	}
	owner, err := b.owner()
	if err != nil {
		return r, err
	}
	r.Owner = owner
	w, err := l.WatchARP(l.Client.Name, netip.MustParseAddr(b.ip), 50*time.Millisecond)
	if err != nil {
		return r, err
	}
	p, err := l.StartProbeTimeout(l.Client.Name, b.url, 20*time.Millisecond, requestTimeout)
	if err != nil {
		w.Stop()
		return r, err
	}
	nodePort, err := l.Kubectl(b.ctx, "get", "svc", "pinned", "-o", "jsonpath={.spec.ports[0].nodePort}")
	if err != nil {
		w.Stop()
		p.Stop()
		return r, err
	}
	n, err := l.Node(owner)
	if err != nil {
		return r, err
	}
	control, err := l.StartProbeTimeout(l.Client.Name, fmt.Sprintf("http://%s:%s/", n.V4, strings.TrimSpace(nodePort)), 20*time.Millisecond, requestTimeout)
	if err != nil {
		w.Stop()
		p.Stop()
		return r, err
	}
	s, err := l.StressNode(owner, true, seed)
	if err != nil {
		w.Stop()
		p.Stop()
		control.Stop()
		return r, err
	}
	fmt.Fprintf(os.Stderr, "stress: %s announces %s; CPU hogs, netem %q both ways, speaker paused 100 ms every 0.5-1.5 s, for %s\n", owner, b.ip, cluster.Netem, d)
	time.Sleep(d)
	r.Pauses = s.Stop()
	answers := w.Stop()
	attempts, err := probe.Parse(strings.NewReader(p.Stop()))
	if err != nil {
		return r, err
	}
	r.Requests, r.Failed = len(attempts), probe.Failures(attempts)
	controlAttempts, err := probe.Parse(strings.NewReader(control.Stop()))
	if err != nil {
		return r, err
	}
	r.ControlRequests, r.ControlFailed = len(controlAttempts), probe.Failures(controlAttempts)
	r.Moves, r.MACs = cluster.MACMoves(answers)
	if r.OwnerAfter, err = b.owner(); err != nil {
		return r, err
	}
	if r.Failed > 0 {
		fmt.Fprintf(os.Stderr, "stress: failed requests to the address: %s\n", probe.Describe(attempts))
	}
	if r.ControlFailed > 0 {
		fmt.Fprintf(os.Stderr, "stress: failed requests to the NodePort: %s\n", probe.Describe(controlAttempts))
	}
	return r, nil
}
