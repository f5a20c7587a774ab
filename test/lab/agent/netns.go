package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ipTimeout bounds every ip(8) call: they normally take milliseconds, and a
// hung one must not wedge a worker forever.
const ipTimeout = 20 * time.Second

// runIP runs ip(8) with args in the agent's network namespace (the node's)
// and returns its combined output. The error names the whole command and
// carries ip's own message, because "exit status 2" alone says nothing.
func runIP(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ipTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// isGone reports whether ip's output says the object it was asked to delete
// is not there, which for a delete is success.
func isGone(out string) bool {
	for _, s := range []string{"No such file or directory", "Cannot find device", "does not exist", "Invalid netns name"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// netnsName and hostVethName derive both names from one small per-node
// index, so that the host end of a pod's veth can be found from its netns
// name alone (after a restart) and stays within IFNAMSIZ (15 chars).
func netnsName(prefix string, idx int) string { return prefix + strconv.Itoa(idx) }
func hostVethName(idx int) string             { return "pv" + strconv.Itoa(idx) }

// netnsIndex returns the index of a pod netns name, or 0 if name is not
// prefix followed by a positive decimal number. Requiring digits keeps a
// node's own netns (or another node's, "plab-n1" vs "plab-n10-p1") from being
// mistaken for a pod's.
func netnsIndex(prefix, name string) int {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || rest[0] == '0' {
		return 0
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0
		}
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// ownNetns returns the name the agent's own network namespace (the
// node's) has in /run/netns, or "" if it has none.
func ownNetns(ctx context.Context) string {
	out, err := runIP(ctx, "netns", "identify", strconv.Itoa(os.Getpid()))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// listNetns returns the names of all named network namespaces that start
// with prefix. Lines of `ip netns list` look like "name (id: 3)" or "name".
func listNetns(ctx context.Context, prefix string) ([]string, error) {
	out, err := runIP(ctx, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// netnsAddrs returns the global addresses on eth0 inside a pod netns; it is
// used after a restart to learn which addresses a leftover netns holds.
func netnsAddrs(ctx context.Context, ns string) ([]netip.Addr, error) {
	out, err := runIP(ctx, "-n", ns, "-j", "addr", "show", "dev", "eth0")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("parse addresses of eth0 in %s: %w", ns, err)
	}
	var addrs []netip.Addr
	for _, l := range links {
		for _, ai := range l.AddrInfo {
			a, err := netip.ParseAddr(ai.Local)
			if err == nil && !a.IsLinkLocalUnicast() {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, nil
}

// podNet is everything needed to wire one pod into the node's pod bridge.
type podNet struct {
	Netns    string
	HostVeth string
	Bridge   string
	Addrs    []netip.Prefix // pod addresses with the pod CIDR's length, IPv4 first
	Gateways []netip.Addr   // bridge addresses, one per address family
}

// podMAC derives the pod's MAC address from its address, the way kubenet
// does (0a:58 followed by the IPv4 address; the low 32 bits of the IPv6
// address in a single-stack IPv6 pod). A pod address is reused as soon as
// it is free, and with a random MAC the node's neighbour entry for it would
// still point at the previous pod's MAC for up to a minute, silently
// blackholing traffic to the new pod. With the MAC following the address
// such a stale entry is simply right.
func podMAC(addrs []netip.Prefix) string {
	if len(addrs) == 0 {
		return ""
	}
	b := addrs[0].Addr().AsSlice()
	b = b[len(b)-4:]
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// pinBridgeMAC gives the pod bridge a fixed MAC address. A Linux bridge
// whose address was never set takes the lowest MAC among its ports and
// changes it as ports come and go; when the port it took it from is
// deleted with its pod, every other pod's neighbour entry for the gateway
// points at a MAC nobody answers to, and their traffic out of the node stops
// until the entry expires. Setting the address once makes the kernel leave
// it alone. It is derived from the gateway address like podMAC, so it is the
// same on every agent start.
func pinBridgeMAC(ctx context.Context, bridge string, gateway netip.Addr) error {
	mac := podMAC([]netip.Prefix{netip.PrefixFrom(gateway, gateway.BitLen())})
	_, err := runIP(ctx, "link", "set", "dev", bridge, "address", mac)
	return err
}

// setupPodNetwork creates the pod netns from scratch: whatever an earlier
// attempt or an earlier agent left under the same names is removed first,
// so a retry never trips over half-built state.
func setupPodNetwork(ctx context.Context, pn podNet) error {
	if err := teardownPodNetwork(ctx, pn); err != nil {
		return err
	}
	peer := []string{"link", "add", pn.HostVeth, "type", "veth", "peer", "name", "eth0"}
	if mac := podMAC(pn.Addrs); mac != "" {
		peer = append(peer, "address", mac)
	}
	// The peer is created directly inside the pod netns, so no interface
	// named eth0 ever appears in the node's namespace.
	peer = append(peer, "netns", pn.Netns)
	steps := [][]string{
		{"netns", "add", pn.Netns},
		peer,
		{"link", "set", pn.HostVeth, "master", pn.Bridge},
		{"link", "set", pn.HostVeth, "up"},
		{"-n", pn.Netns, "link", "set", "lo", "up"},
	}
	for _, a := range pn.Addrs {
		s := []string{"-n", pn.Netns, "addr", "add", a.String(), "dev", "eth0"}
		if a.Addr().Is6() {
			// Skip duplicate address detection: the allocator already
			// guarantees uniqueness, and DAD would leave the address
			// tentative (unusable) for a second or two after start.
			s = append(s, "nodad")
		}
		steps = append(steps, s)
	}
	steps = append(steps, []string{"-n", pn.Netns, "link", "set", "eth0", "up"})
	for _, gw := range pn.Gateways {
		fam := "-4"
		if gw.Is6() {
			fam = "-6"
		}
		steps = append(steps, []string{"-n", pn.Netns, fam, "route", "add", "default", "via", gw.String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if _, err := runIP(ctx, s...); err != nil {
			return fmt.Errorf("set up pod network %s: %w", pn.Netns, err)
		}
	}
	return nil
}

// teardownPodNetwork removes a pod's veth and netns and forgets the node's
// neighbour entries for its addresses; missing pieces are fine. The host end
// is deleted explicitly (which takes the peer with it) rather than left to
// the netns removal, because the kernel destroys a dead namespace's devices
// asynchronously and a quick reuse of the same name would otherwise fail
// with "File exists".
func teardownPodNetwork(ctx context.Context, pn podNet) error {
	var errs []error
	if pn.HostVeth != "" {
		if out, err := runIP(ctx, "link", "del", pn.HostVeth); err != nil && !isGone(out) {
			errs = append(errs, err)
		}
	}
	if out, err := runIP(ctx, "netns", "del", pn.Netns); err != nil && !isGone(out) {
		errs = append(errs, err)
	}
	for _, a := range pn.Addrs {
		// Best effort: a stale entry only delays the next pod with this
		// address, and podMAC makes most of them right anyway.
		_, _ = runIP(ctx, "neigh", "flush", "to", a.Addr().String())
	}
	return errors.Join(errs...)
}

// Cleanup deletes every named network namespace whose name starts with
// prefix, for the lab's teardown. It does not kill processes still running
// inside them (the kernel keeps such a namespace alive until they exit, but
// its name is gone). An empty prefix is refused: it would match every netns
// on the machine.
func Cleanup(prefix string) error {
	if prefix == "" {
		return errors.New("agent.Cleanup: empty prefix would delete every netns")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names, err := listNetns(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if out, err := runIP(ctx, "netns", "del", ns); err != nil && !isGone(out) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
