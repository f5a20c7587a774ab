package routers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultFRRBinDir is where Debian's frr package puts the daemons.
const DefaultFRRBinDir = "/usr/lib/frr"

// FRRConfig describes one FRR router: zebra, bfdd and bgpd in a namespace.
type FRRConfig struct {
	// Namespace is the network namespace (as `ip netns` names it) the
	// daemons run in. Required: a lab router never runs in the machine's
	// own namespace.
	Namespace string
	// Dir is the router's working directory (created if missing) for its
	// configuration, pid files, sockets and logs. The daemons run as user
	// frr, so StartFRR hands Dir to frr and fails if a parent directory
	// is not searchable by others (os.MkdirTemp and t.TempDir make 0700
	// directories: chmod them 0755).
	Dir string
	// Hostname appears in FRR's output and the hostname capability;
	// defaults to the namespace name.
	Hostname string
	// RouterID is the BGP router ID (an IPv4 address).
	RouterID netip.Addr
	// ASN is the router's own AS number.
	ASN uint32
	// Neighbors are the configured BGP peers.
	Neighbors []FRRNeighbor
	// MaximumPaths is the BGP ECMP width (maximum-paths, eBGP and iBGP);
	// 0 means 8.
	MaximumPaths int
	// Networks are prefixes bgpd originates itself with `network`
	// statements. `no bgp network import-check` makes them unconditional,
	// so they need neither staticd nor a route in the RIB: 10,000 of them
	// are 10,000 short config lines that bgpd reads at start, with no
	// kernel routes to install and no redistribution to wait for.
	Networks []netip.Prefix
	// KeepaliveSec and HoldSec set `timers bgp` for all neighbors; zero
	// keeps FRR's defaults (60 and 180 s).
	KeepaliveSec, HoldSec int
	// Forwarding enables IPv4 and IPv6 forwarding in the namespace
	// (zebra's `ip forwarding`), for a router that carries traffic.
	Forwarding bool
	// BinDir holds zebra, bfdd and bgpd; defaults to DefaultFRRBinDir.
	BinDir string
	// Vtysh is the vtysh binary; defaults to "vtysh" from PATH.
	Vtysh string
}

// FRRNeighbor is one BGP peer of an FRR router. Its session is activated
// in every family of Families (both by default), whatever the session's
// own address family: MP-BGP over an IPv4 session carries IPv6 too.
type FRRNeighbor struct {
	Address   netip.Addr
	RemoteASN uint32
	// Password enables TCP MD5 authentication (one word, no spaces).
	Password string
	// BFD, when set, registers the session with bfdd using these timers
	// (a per-neighbor BFD profile); a BFD Down tears the session down.
	BFD *BFDTimers
	// EBGPMultihop, when positive, is the TTL for a peer that is not
	// directly connected (ebgp-multihop); BFD then runs multihop too.
	EBGPMultihop int
	// Passive makes FRR wait for the peer to connect.
	Passive bool
	// ConnectRetrySec is the connect retry timer; 0 means 1 s, so that a
	// lab session comes up as soon as the peer listens, rather than
	// after FRR's default 120 s.
	ConnectRetrySec int
	// Families to activate; empty means IPv4 and IPv6.
	Families []Family
}

// FRR is a running FRR router. Its methods are safe for concurrent use.
type FRR struct {
	cfg   FRRConfig
	dir   string
	vtysh string

	mu      sync.Mutex
	daemons map[string]*daemon // zebra, bfdd, bgpd
	stopped bool
}

// The FRR daemons in start order: bfdd and bgpd reach zebra through its
// zserv socket, and bgpd reaches bfdd through zebra.
var frrDaemons = []string{"zebra", "bfdd", "bgpd"}

// StartFRR writes the configuration of cfg and starts zebra, bfdd and bgpd
// in cfg.Namespace, and returns once vtysh gets answers from bgpd, bfdd and
// zebra. Call Stop when done, also after an error is returned: the
// daemons started until then are still running.
//
// Each daemon gets a configuration file of its own: in one integrated
// file, the daemons that do not know a block (bgpd and `bfd`, say) take
// its `exit` for their own and drop the rest of the file. All paths are
// private to Dir (-i pid file, -z zserv socket, --vty_socket, bfdd's
// --bfdctl) and -P 0 turns off the TCP vty ports, so several routers run
// side by side and none meets a system-wide FRR.
func StartFRR(ctx context.Context, cfg FRRConfig) (*FRR, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("frr: Namespace is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("frr: Dir is required")
	}
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultFRRBinDir
	}
	if cfg.Vtysh == "" {
		cfg.Vtysh = "vtysh"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.Namespace
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	files, err := cfg.configFiles(dir)
	if err != nil {
		return nil, err
	}
	vtysh, err := exec.LookPath(cfg.Vtysh)
	if err != nil {
		return nil, fmt.Errorf("frr: %w", err)
	}
	for _, d := range frrDaemons {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, d)); err != nil {
			return nil, fmt.Errorf("frr: %w", err)
		}
	}
	uid, gid, err := frrUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if err := checkSearchable(dir); err != nil {
		return nil, err
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return nil, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	// FRR skips a configuration line it does not understand, logs it and
	// runs on: a dry run (-C) turns that into an error here rather than
	// a router quietly configured otherwise than asked. Not zebra's: a
	// dry run still applies some commands (ip forwarding sets the sysctl),
	// and its file has nothing to get wrong.
	for _, name := range []string{"bfdd", "bgpd"} {
		if err := frrDryRun(ctx, cfg.Namespace, filepath.Join(cfg.BinDir, name), filepath.Join(dir, name+".conf")); err != nil {
			return nil, err
		}
	}
	// Sockets and pid files of an earlier run in the same Dir would make
	// the readiness checks below pass too early.
	removeRuntimeFiles(dir)

	f := &FRR{cfg: cfg, dir: dir, vtysh: vtysh, daemons: map[string]*daemon{}}
	for _, name := range frrDaemons {
		if err := f.start(name); err != nil {
			return f, err
		}
		if name == "zebra" {
			// Not needed for correctness (clients retry), but bgpd
			// connecting at once gets the interfaces and nexthop
			// tracking without a retry delay.
			if err := f.waitFile(ctx, filepath.Join(dir, "zserv.api"), "zebra"); err != nil {
				return f, err
			}
		}
	}
	if err := f.waitReady(ctx, 15*time.Second); err != nil {
		return f, err
	}
	return f, nil
}

// frrUser is the user the FRR daemons switch to. They refuse root (it is
// not in the frrvty group), so the package's frr user is required.
func frrUser() (uid, gid int, err error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("frr: user frr (from the frr package): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// frrDryRun checks a daemon's configuration file with -C, in the router's
// namespace like the daemon itself. FRR exits 0 either way, so its log is
// read: "No such command on config line 5: ...", "Command incomplete on
// config line ...", "can't open configuration file ...".
func frrDryRun(ctx context.Context, ns, bin, conf string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "-C", "-f", conf, "-u", "frr", "-g", "frr", "--log", "stdout").CombinedOutput()
	if err != nil {
		return fmt.Errorf("frr: %s -C %s: %w: %s", filepath.Base(bin), conf, err, snippet(out))
	}
	if bytes.Contains(out, []byte("on config line")) || bytes.Contains(out, []byte("configuration file")) {
		return fmt.Errorf("frr: %s rejects %s: %s", filepath.Base(bin), conf, snippet(out))
	}
	return nil
}

// checkSearchable fails when user frr could not reach dir because a parent
// directory is not searchable by others.
func checkSearchable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("frr: %s (%v) is not searchable by user frr, which the daemons run as: chmod o+x it or use another Dir", p, st.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func removeRuntimeFiles(dir string) {
	for _, name := range []string{"zserv.api", "bfdd.sock", "zebra.vty", "bfdd.vty", "bgpd.vty", "zebra.pid", "bfdd.pid", "bgpd.pid"} {
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// argv is the command line of one daemon.
func (f *FRR) argv(name string) []string {
	d := f.dir
	a := []string{
		filepath.Join(f.cfg.BinDir, name),
		"-f", filepath.Join(d, name+".conf"),
		"-i", filepath.Join(d, name+".pid"),
		"-z", filepath.Join(d, "zserv.api"),
		"--vty_socket", d,
		"-u", "frr", "-g", "frr",
		"-P", "0",
	}
	switch name {
	case "zebra":
		// Debian's default netlink receive buffer: route dumps of large
		// tables overflow the kernel's default.
		a = append(a, "-s", "90000000")
	case "bfdd":
		a = append(a, "--bfdctl", filepath.Join(d, "bfdd.sock"))
	}
	return a
}

func (f *FRR) start(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return errors.New("frr: stopped")
	}
	d, err := startDaemon(f.cfg.Namespace, f.dir, name, f.argv(name))
	if err != nil {
		return fmt.Errorf("frr: %w", err)
	}
	f.daemons[name] = d
	return nil
}

func (f *FRR) daemon(name string) *daemon {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.daemons[name]
}

// waitFile waits for a daemon to create path, failing early if it exits.
func (f *FRR) waitFile(ctx context.Context, path, name string) error {
	return poll(ctx, 10*time.Second, 20*time.Millisecond, func() error {
		if d := f.daemon(name); d == nil || d.exited() {
			return fmt.Errorf("frr: %s exited; see %s", name, filepath.Join(f.dir, name+".out"))
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("frr: %s not created by %s", path, name)
		}
		return nil
	})
}

// waitReady waits until bgpd, bfdd and zebra answer through vtysh.
func (f *FRR) waitReady(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, func() error {
		for _, name := range frrDaemons {
			if d := f.daemon(name); d == nil || d.exited() {
				return fmt.Errorf("frr: %s exited; see %s", name, filepath.Join(f.dir, name+".out"))
			}
		}
		var sum map[string]json.RawMessage
		if err := f.JSON(ctx, "show bgp summary json", &sum); err != nil {
			return err
		}
		var bfd []json.RawMessage
		if err := f.JSON(ctx, "show bfd peers json", &bfd); err != nil {
			return err
		}
		var rib map[string]json.RawMessage
		return f.JSON(ctx, "show ip route json", &rib)
	})
}

// Dir is the router's working directory: configuration (zebra.conf,
// bfdd.conf, bgpd.conf), logs (NAME.log, NAME.out) and sockets.
func (f *FRR) Dir() string { return f.dir }

// Stop ends the daemons (SIGTERM, SIGKILL after a second) and removes
// their sockets and pid files. It is idempotent, and a no-op on a nil
// *FRR; the router cannot be started again.
func (f *FRR) Stop() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	f.stopped = true
	ds := f.daemons
	f.mu.Unlock()
	// bgpd first, so that it does not see zebra or bfdd vanish and log
	// errors that would mislead a reader of its log.
	for _, name := range []string{"bgpd", "bfdd", "zebra"} {
		if d := ds[name]; d != nil {
			d.stop(time.Second)
		}
	}
	removeRuntimeFiles(f.dir)
	return nil
}

// Signal sends sig to one daemon ("zebra", "bfdd" or "bgpd"), for fault
// injection: SIGSTOP freezes bgpd with its TCP sessions open, SIGKILL
// crashes it.
func (f *FRR) Signal(name string, sig syscall.Signal) error {
	d := f.daemon(name)
	if d == nil {
		return fmt.Errorf("frr: no daemon %q", name)
	}
	return d.signal(sig)
}

// RestartBGPD crashes bgpd (SIGKILL, as a router failure would) and starts
// it again with the same configuration, returning when it answers vtysh.
// Its peers see the TCP session reset. Because `bgp graceful-restart` is
// configured, zebra keeps bgpd's kernel routes while bgpd is away.
func (f *FRR) RestartBGPD(ctx context.Context) error {
	d := f.daemon("bgpd")
	if d == nil {
		return errors.New("frr: no bgpd")
	}
	d.kill()
	_ = os.Remove(filepath.Join(f.dir, "bgpd.vty"))
	_ = os.Remove(filepath.Join(f.dir, "bgpd.pid"))
	if err := f.start("bgpd"); err != nil {
		return err
	}
	return poll(ctx, 15*time.Second, 50*time.Millisecond, func() error {
		if d := f.daemon("bgpd"); d.exited() {
			return fmt.Errorf("frr: bgpd exited; see %s", filepath.Join(f.dir, "bgpd.out"))
		}
		var sum map[string]json.RawMessage
		return f.JSON(ctx, "show bgp summary json", &sum)
	})
}

// JSON runs `vtysh -c cmd` against this router's daemons and decodes its
// output, which must be JSON (the command should end in "json"), into v.
func (f *FRR) JSON(ctx context.Context, cmd string, v any) error {
	out, err := f.Vtysh(ctx, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("frr: %q: %w in %q", cmd, err, snippet(out))
	}
	return nil
}

// Vtysh runs `vtysh -c cmd` against this router's daemons and returns the
// output.
func (f *FRR) Vtysh(ctx context.Context, cmd string) ([]byte, error) {
	out, err := runOutput(ctx, f.vtysh, "--vty_socket", f.dir, "-c", cmd)
	if err != nil {
		return nil, fmt.Errorf("frr: %w", err)
	}
	return out, nil
}

// BGPPath is one valid path of FRR's BGP table.
type BGPPath struct {
	// Best is FRR's best path; Multipath marks the other members of its
	// ECMP set (FRR 8.4 does not flag the best path multipath).
	Best, Multipath bool
	// PeerID is the address of the peer the path came from, or
	// "(unspec)" for a path the router originates.
	PeerID string
	// ASPath is the AS path as text ("64513 64514"), empty if local.
	ASPath string
	// NextHops are the path's next hops: the global addresses, or the
	// link-local ones when an IPv6 path has no other. A path the router
	// originates has the unspecified address (0.0.0.0 or ::).
	NextHops []netip.Addr
}

// frrTable is `show bgp ipv4|ipv6 unicast json`:
//
//	{"routerId": "198.18.0.1", "localAS": 64512, "routes": {
//	  "198.18.100.1/32": [{"valid": true, "bestpath": true,
//	    "multipath": true, "peerId": "198.18.0.2", "path": "64513",
//	    "nexthops": [{"ip": "198.18.0.2", "afi": "ipv4", "used": true}]}],
//	  "2001:db8:100::1/128": [{"valid": true, "bestpath": true, ...
//	    "nexthops": [{"ip": "2001:db8:0:1::2", "afi": "ipv6", "scope": "global"},
//	      {"ip": "fe80::c4ea:20ff:fef7:ff4e", "afi": "ipv6", "scope": "link-local", "used": true}]}]}}
type frrTable struct {
	Routes map[string][]frrTablePath `json:"routes"`
}

type frrTablePath struct {
	Valid     bool         `json:"valid"`
	Bestpath  bool         `json:"bestpath"`
	Multipath bool         `json:"multipath"`
	PeerID    string       `json:"peerId"`
	Path      string       `json:"path"`
	Nexthops  []frrNexthop `json:"nexthops"`
}

type frrNexthop struct {
	IP    string `json:"ip"`
	Afi   string `json:"afi"`
	Scope string `json:"scope"`
	Used  bool   `json:"used"`
}

// nexthopAddrs picks the next hops of a path: the global ones, or the
// link-local ones when there is no other (FRR lists an IPv6 peer's global
// next hop and its link-local one, and uses the latter in the kernel).
func nexthopAddrs(nhs []frrNexthop) []netip.Addr {
	var global, local []netip.Addr
	for _, nh := range nhs {
		a, err := netip.ParseAddr(nh.IP)
		if err != nil {
			continue
		}
		if nh.Scope == "link-local" || a.IsLinkLocalUnicast() {
			local = append(local, a)
		} else {
			global = append(global, a)
		}
	}
	if len(global) > 0 {
		return global
	}
	return local
}

// Paths returns the valid paths of FRR's BGP table for fam, from
// `show bgp ipv4|ipv6 unicast json`: fields routes (prefix → paths), and
// per path valid, bestpath, multipath, peerId, path and nexthops[].ip and
// .scope. Paths that are not valid (an unresolvable next hop, say) are
// left out.
func (f *FRR) Paths(ctx context.Context, fam Family) (map[netip.Prefix][]BGPPath, error) {
	if _, err := families([]Family{fam}); err != nil {
		return nil, err
	}
	var t frrTable
	if err := f.JSON(ctx, "show bgp "+string(fam)+" unicast json", &t); err != nil {
		return nil, err
	}
	return t.paths()
}

func (t frrTable) paths() (map[netip.Prefix][]BGPPath, error) {
	res := make(map[netip.Prefix][]BGPPath, len(t.Routes))
	for key, ps := range t.Routes {
		pfx, err := netip.ParsePrefix(key)
		if err != nil {
			return nil, fmt.Errorf("frr: route %q: %w", key, err)
		}
		for _, p := range ps {
			if !p.Valid {
				continue
			}
			res[pfx] = append(res[pfx], BGPPath{
				Best:      p.Bestpath,
				Multipath: p.Multipath,
				PeerID:    p.PeerID,
				ASPath:    p.Path,
				NextHops:  nexthopAddrs(p.Nexthops),
			})
		}
	}
	return res, nil
}

// Routes returns the routes FRR selected in fam: for each prefix, the next
// hops of its best path and of the paths in its ECMP set (valid paths with
// bestpath or multipath set in `show bgp ipv4|ipv6 unicast json`), sorted,
// without duplicates. What reaches the kernel is FIBRoutes.
func (f *FRR) Routes(ctx context.Context, fam Family) (map[netip.Prefix][]netip.Addr, error) {
	paths, err := f.Paths(ctx, fam)
	if err != nil {
		return nil, err
	}
	return selectedNextHops(paths), nil
}

func selectedNextHops(paths map[netip.Prefix][]BGPPath) map[netip.Prefix][]netip.Addr {
	res := map[netip.Prefix][]netip.Addr{}
	for pfx, ps := range paths {
		var nhs []netip.Addr
		for _, p := range ps {
			if p.Best || p.Multipath {
				nhs = append(nhs, p.NextHops...)
			}
		}
		if len(nhs) == 0 {
			continue
		}
		slices.SortFunc(nhs, netip.Addr.Compare)
		res[pfx] = slices.Compact(nhs)
	}
	return res
}

// zebraRoute is one entry of `show ip route json` / `show ipv6 route json`:
//
//	{"198.18.100.1/32": [{"prefix": "198.18.100.1/32", "protocol": "bgp",
//	  "selected": true, "installed": true, "table": 254,
//	  "nexthops": [{"fib": true, "ip": "198.18.0.2", "afi": "ipv4",
//	    "interfaceName": "prt-f", "active": true, "weight": 1}]}]}
type zebraRoute struct {
	Protocol  string `json:"protocol"`
	Selected  bool   `json:"selected"`
	Installed bool   `json:"installed"`
	Nexthops  []struct {
		IP            string `json:"ip"`
		Fib           bool   `json:"fib"`
		InterfaceName string `json:"interfaceName"`
	} `json:"nexthops"`
}

// FIBRoutes returns the BGP routes zebra installed in the namespace's
// kernel table for fam, from `show ip route json` or `show ipv6 route
// json`: entries with protocol "bgp" and installed true, and their next
// hops with fib true (the kernel's ECMP set), sorted. IPv6 next hops are
// what the kernel uses, usually the peer's link-local address.
func (f *FRR) FIBRoutes(ctx context.Context, fam Family) (map[netip.Prefix][]netip.Addr, error) {
	cmd := "show ip route json"
	switch fam {
	case IPv4:
	case IPv6:
		cmd = "show ipv6 route json"
	default:
		return nil, fmt.Errorf("unknown address family %q", fam)
	}
	var rib map[string][]zebraRoute
	if err := f.JSON(ctx, cmd, &rib); err != nil {
		return nil, err
	}
	return fibRoutes(rib)
}

func fibRoutes(rib map[string][]zebraRoute) (map[netip.Prefix][]netip.Addr, error) {
	res := map[netip.Prefix][]netip.Addr{}
	for key, rs := range rib {
		pfx, err := netip.ParsePrefix(key)
		if err != nil {
			return nil, fmt.Errorf("frr: route %q: %w", key, err)
		}
		for _, r := range rs {
			if r.Protocol != "bgp" || !r.Installed {
				continue
			}
			var nhs []netip.Addr
			for _, nh := range r.Nexthops {
				if a, err := netip.ParseAddr(nh.IP); err == nil && nh.Fib {
					nhs = append(nhs, a)
				}
			}
			slices.SortFunc(nhs, netip.Addr.Compare)
			res[pfx] = slices.Compact(nhs)
		}
	}
	return res, nil
}

// BFDPeer is one BFD session of bfdd, from `show bfd peers json`:
//
//	[{"multihop": false, "peer": "198.18.0.2", "local": "198.18.0.1",
//	  "interface": "prt-f", "status": "up", "uptime": 2,
//	  "diagnostic": "ok", "remote-diagnostic": "ok",
//	  "receive-interval": 300, "transmit-interval": 300,
//	  "detect-multiplier": 3, "remote-receive-interval": 300, ...}]
type BFDPeer struct {
	Multihop  bool   `json:"multihop"`
	Peer      string `json:"peer"`
	Local     string `json:"local"`
	Interface string `json:"interface"`
	// Status is "up", "down", "init" or "shutdown".
	Status string `json:"status"`
	// Diagnostic tells why the session last went down, e.g. "control
	// detection time expired" when the peer fell silent.
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
	// UptimeSec is set while up, DowntimeSec while down.
	UptimeSec   int `json:"uptime"`
	DowntimeSec int `json:"downtime"`
	// The timers in use (ms), this side's and the peer's.
	ReceiveInterval        int `json:"receive-interval"`
	TransmitInterval       int `json:"transmit-interval"`
	DetectMultiplier       int `json:"detect-multiplier"`
	RemoteReceiveInterval  int `json:"remote-receive-interval"`
	RemoteTransmitInterval int `json:"remote-transmit-interval"`
	RemoteDetectMultiplier int `json:"remote-detect-multiplier"`
}

// BFDPeers returns bfdd's sessions by peer address.
func (f *FRR) BFDPeers(ctx context.Context) (map[netip.Addr]BFDPeer, error) {
	var peers []BFDPeer
	if err := f.JSON(ctx, "show bfd peers json", &peers); err != nil {
		return nil, err
	}
	res := make(map[netip.Addr]BFDPeer, len(peers))
	for _, p := range peers {
		a, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return nil, fmt.Errorf("frr: bfd peer %q: %w", p.Peer, err)
		}
		res[a] = p
	}
	return res, nil
}

// Neighbor is the state of one BGP session, from `show bgp neighbors json`.
type Neighbor struct {
	// State is bgpState: "Established", "Idle", "Connect", "Active",
	// "OpenSent", "OpenConfirm".
	State    string
	RemoteAS uint32
	// UptimeMsec is bgpTimerUpMsec: time since the session came up.
	UptimeMsec int64
	// HoldTimeMsec is the negotiated hold time (bgpTimerHoldTimeMsecs).
	HoldTimeMsec int64
	// PrefixesReceived and PrefixesSent are acceptedPrefixCounter and
	// sentPrefixCounter of addressFamilyInfo, by family.
	PrefixesReceived map[Family]int
	PrefixesSent     map[Family]int
	// ConnectionsEstablished and ConnectionsDropped count sessions.
	ConnectionsEstablished, ConnectionsDropped int
	// LastResetDueTo is why the session last went down ("BGP
	// Notification send", "Peer closed the session", ...).
	LastResetDueTo string
	// LastNotificationReason is the last NOTIFICATION's text, e.g.
	// "Cease/BFD Down", and LastErrorCodeSubcode its code and subcode
	// in hex ("060A").
	LastNotificationReason string
	LastErrorCodeSubcode   string
	// BFDStatus is peerBfdInfo.status ("Up", "Down"), empty without BFD.
	BFDStatus string
	// GracefulRestart is neighborCapabilities.gracefulRestart, e.g.
	// "advertisedAndReceived".
	GracefulRestart string
}

// frrNeighbor is one value of `show bgp neighbors json` (keyed by peer):
//
//	{"198.18.0.2": {"remoteAs": 64513, "bgpState": "Established",
//	  "bgpTimerUpMsec": 13000, "bgpTimerHoldTimeMsecs": 180000,
//	  "neighborCapabilities": {"gracefulRestart": "advertisedAndReceived", ...},
//	  "addressFamilyInfo": {"ipv4Unicast": {"acceptedPrefixCounter": 1,
//	    "sentPrefixCounter": 2}, "ipv6Unicast": {...}},
//	  "connectionsEstablished": 1, "connectionsDropped": 0,
//	  "lastResetDueTo": "BGP Notification send",
//	  "lastNotificationReason": "Cease/BFD Down",
//	  "lastErrorCodeSubcode": "060A",
//	  "peerBfdInfo": {"type": "single hop", "status": "Up", ...}}}
type frrNeighbor struct {
	RemoteAs               uint32 `json:"remoteAs"`
	BgpState               string `json:"bgpState"`
	BgpTimerUpMsec         int64  `json:"bgpTimerUpMsec"`
	BgpTimerHoldTimeMsecs  int64  `json:"bgpTimerHoldTimeMsecs"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
	LastResetDueTo         string `json:"lastResetDueTo"`
	LastNotificationReason string `json:"lastNotificationReason"`
	LastErrorCodeSubcode   string `json:"lastErrorCodeSubcode"`
	NeighborCapabilities   struct {
		GracefulRestart string `json:"gracefulRestart"`
	} `json:"neighborCapabilities"`
	AddressFamilyInfo map[string]struct {
		AcceptedPrefixCounter int `json:"acceptedPrefixCounter"`
		SentPrefixCounter     int `json:"sentPrefixCounter"`
	} `json:"addressFamilyInfo"`
	PeerBfdInfo struct {
		Status string `json:"status"`
	} `json:"peerBfdInfo"`
}

// Neighbors returns the BGP sessions by peer address.
func (f *FRR) Neighbors(ctx context.Context) (map[netip.Addr]Neighbor, error) {
	var raw map[string]json.RawMessage
	if err := f.JSON(ctx, "show bgp neighbors json", &raw); err != nil {
		return nil, err
	}
	return parseNeighbors(raw)
}

func parseNeighbors(raw map[string]json.RawMessage) (map[netip.Addr]Neighbor, error) {
	res := make(map[netip.Addr]Neighbor, len(raw))
	for key, msg := range raw {
		a, err := netip.ParseAddr(key)
		if err != nil {
			continue // not a peer (FRR adds summary keys in some versions)
		}
		var n frrNeighbor
		if err := json.Unmarshal(msg, &n); err != nil {
			return nil, fmt.Errorf("frr: neighbor %s: %w", key, err)
		}
		nb := Neighbor{
			State:                  n.BgpState,
			RemoteAS:               n.RemoteAs,
			UptimeMsec:             n.BgpTimerUpMsec,
			HoldTimeMsec:           n.BgpTimerHoldTimeMsecs,
			PrefixesReceived:       map[Family]int{},
			PrefixesSent:           map[Family]int{},
			ConnectionsEstablished: n.ConnectionsEstablished,
			ConnectionsDropped:     n.ConnectionsDropped,
			LastResetDueTo:         n.LastResetDueTo,
			LastNotificationReason: n.LastNotificationReason,
			LastErrorCodeSubcode:   n.LastErrorCodeSubcode,
			BFDStatus:              n.PeerBfdInfo.Status,
			GracefulRestart:        n.NeighborCapabilities.GracefulRestart,
		}
		for afi, c := range n.AddressFamilyInfo {
			fam := map[string]Family{"ipv4Unicast": IPv4, "ipv6Unicast": IPv6}[afi]
			if fam == "" {
				continue
			}
			nb.PrefixesReceived[fam] = c.AcceptedPrefixCounter
			nb.PrefixesSent[fam] = c.SentPrefixCounter
		}
		res[a] = nb
	}
	return res, nil
}

// PathAttrs are the attributes of one path to a prefix, from
// `show bgp ipv4|ipv6 unicast PREFIX json`.
type PathAttrs struct {
	// PeerID is the address of the peer the path came from, "0.0.0.0"
	// for a path the router originates.
	PeerID          string
	Best, Multipath bool
	// ASPath is the AS path as text, empty for a local or iBGP path.
	ASPath string
	// Origin is "IGP", "EGP" or "incomplete".
	Origin string
	// Communities ("64513:100"), LargeCommunities ("64513:1:2") and
	// ExtCommunities ("RT:1:2") as FRR prints them; well-known
	// communities come by name ("no-export").
	Communities      []string
	LargeCommunities []string
	ExtCommunities   []string
	// LocalPref is nil when the path has no LOCAL_PREF attribute, as
	// paths learned over eBGP have not: FRR then uses the default, 100.
	LocalPref *uint32
	// MED is nil when the path has no MULTI_EXIT_DISC attribute.
	MED      *uint32
	NextHops []netip.Addr
}

// frrPrefix is `show bgp ipv4 unicast PREFIX json`:
//
//	{"prefix": "198.18.100.1/32", "paths": [{
//	  "aspath": {"string": "64513", "segments": [...], "length": 1},
//	  "origin": "IGP", "valid": true,
//	  "bestpath": {"overall": true, "selectionReason": "First path received"},
//	  "community": {"string": "64513:100", "list": ["64513:100"]},
//	  "largeCommunity": {"string": "64513:1:2", "list": ["64513:1:2"]},
//	  "nexthops": [{"ip": "198.18.0.2", "afi": "ipv4", "accessible": true, "used": true}],
//	  "peer": {"peerId": "198.18.0.2", "routerId": "198.18.0.2", "type": "external"}}]}
//
// "localpref" and "metric" appear only when the path carries them;
// "multipath": true marks an ECMP member.
type frrPrefix struct {
	Paths []struct {
		ASPath struct {
			String string `json:"string"`
		} `json:"aspath"`
		Origin    string `json:"origin"`
		Valid     bool   `json:"valid"`
		Multipath bool   `json:"multipath"`
		Bestpath  struct {
			Overall bool `json:"overall"`
		} `json:"bestpath"`
		Community struct {
			List []string `json:"list"`
		} `json:"community"`
		LargeCommunity struct {
			List []string `json:"list"`
		} `json:"largeCommunity"`
		ExtendedCommunity struct {
			String string `json:"string"`
		} `json:"extendedCommunity"`
		LocalPref *uint32      `json:"locPrf"`
		Metric    *uint32      `json:"metric"`
		Nexthops  []frrNexthop `json:"nexthops"`
		Peer      struct {
			PeerID string `json:"peerId"`
		} `json:"peer"`
	} `json:"paths"`
}

// RouteAttrs returns the paths FRR holds for exactly prefix, with their
// attributes; none (and no error) when the prefix is not in the table.
func (f *FRR) RouteAttrs(ctx context.Context, prefix netip.Prefix) ([]PathAttrs, error) {
	var p frrPrefix
	cmd := fmt.Sprintf("show bgp %s unicast %s json", familyOf(prefix.Addr()), prefix.Masked())
	if err := f.JSON(ctx, cmd, &p); err != nil {
		return nil, err
	}
	return p.attrs(), nil
}

// localPath turns FRR's "Local", its text for an empty AS path in
// `show bgp PREFIX json`, into "" as `show bgp json` has it.
func localPath(s string) string {
	if s == "Local" {
		return ""
	}
	return s
}

func (p frrPrefix) attrs() []PathAttrs {
	var res []PathAttrs
	for _, path := range p.Paths {
		res = append(res, PathAttrs{
			PeerID:           path.Peer.PeerID,
			Best:             path.Bestpath.Overall,
			Multipath:        path.Multipath,
			ASPath:           localPath(path.ASPath.String),
			Origin:           path.Origin,
			Communities:      path.Community.List,
			LargeCommunities: path.LargeCommunity.List,
			ExtCommunities:   strings.Fields(path.ExtendedCommunity.String),
			LocalPref:        path.LocalPref,
			MED:              path.Metric,
			NextHops:         nexthopAddrs(path.Nexthops),
		})
	}
	return res
}

// configFiles renders zebra.conf, bfdd.conf and bgpd.conf for dir.
func (c FRRConfig) configFiles(dir string) (map[string]string, error) {
	if !c.RouterID.Is4() {
		return nil, fmt.Errorf("frr: RouterID %v is not an IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		return nil, errors.New("frr: ASN is required")
	}
	paths := c.MaximumPaths
	if paths == 0 {
		paths = 8
	}
	header := func(w *bytes.Buffer, daemon string) {
		// traditional: FRR's classic defaults (not datacenter's), so
		// every deviation the lab needs is spelled out below.
		fmt.Fprintf(w, "frr defaults traditional\nhostname %s\nlog file %s informational\n!\n",
			c.Hostname, filepath.Join(dir, daemon+".log"))
	}

	var zebra bytes.Buffer
	header(&zebra, "zebra")
	if c.Forwarding {
		zebra.WriteString("ip forwarding\nipv6 forwarding\n!\n")
	}

	var bfdd, bgpd bytes.Buffer
	header(&bfdd, "bfdd")
	header(&bgpd, "bgpd")
	bfdd.WriteString("bfd\n")
	fmt.Fprintf(&bgpd, "router bgp %d\n", c.ASN)
	fmt.Fprintf(&bgpd, " bgp router-id %s\n", c.RouterID)
	// Without a policy FRR 8 neither accepts nor sends eBGP routes
	// (RFC 8212); the lab judges what the speaker sends, not policy.
	bgpd.WriteString(" no bgp ebgp-requires-policy\n")
	// Families are activated per neighbor below, never implicitly.
	bgpd.WriteString(" no bgp default ipv4-unicast\n")
	// Networks are originated whether or not the RIB has them.
	bgpd.WriteString(" no bgp network import-check\n")
	// Speakers with different AS numbers announcing one service IP form
	// one ECMP set.
	bgpd.WriteString(" bgp bestpath as-path multipath-relax\n")
	// Advertise the capability (restarting and helper), so that a speaker
	// with graceful restart keeps its routes through a restart of ours,
	// and zebra keeps bgpd's kernel routes through a bgpd restart.
	bgpd.WriteString(" bgp graceful-restart\n")
	bgpd.WriteString(" bgp log-neighbor-changes\n")
	if c.KeepaliveSec != 0 || c.HoldSec != 0 {
		if c.KeepaliveSec <= 0 || c.HoldSec <= 0 {
			return nil, errors.New("frr: KeepaliveSec and HoldSec go together")
		}
		fmt.Fprintf(&bgpd, " timers bgp %d %d\n", c.KeepaliveSec, c.HoldSec)
	}
	active := map[Family][]string{}
	seen := map[netip.Addr]bool{}
	for i, n := range c.Neighbors {
		if !n.Address.IsValid() {
			return nil, fmt.Errorf("frr: neighbor %d has no address", i)
		}
		if seen[n.Address] {
			return nil, fmt.Errorf("frr: neighbor %s is listed twice", n.Address)
		}
		seen[n.Address] = true
		if n.RemoteASN == 0 {
			return nil, fmt.Errorf("frr: neighbor %s has no RemoteASN", n.Address)
		}
		fams, err := families(n.Families)
		if err != nil {
			return nil, fmt.Errorf("frr: neighbor %s: %w", n.Address, err)
		}
		a := n.Address.String()
		fmt.Fprintf(&bgpd, " neighbor %s remote-as %d\n", a, n.RemoteASN)
		if n.Password != "" {
			if strings.ContainsAny(n.Password, " \t\n\r!") {
				return nil, fmt.Errorf("frr: neighbor %s: the password must be one word", a)
			}
			fmt.Fprintf(&bgpd, " neighbor %s password %s\n", a, n.Password)
		}
		if n.EBGPMultihop > 0 {
			fmt.Fprintf(&bgpd, " neighbor %s ebgp-multihop %d\n", a, n.EBGPMultihop)
		}
		if n.Passive {
			fmt.Fprintf(&bgpd, " neighbor %s passive\n", a)
		}
		retry := n.ConnectRetrySec
		if retry == 0 {
			retry = 1
		}
		fmt.Fprintf(&bgpd, " neighbor %s timers connect %d\n", a, retry)
		if n.BFD != nil {
			// FRR 8.4: the timers live in a bfdd profile; bgpd names
			// it (the older `neighbor X bfd MULT RX TX` is deprecated).
			t := n.BFD.withDefaults()
			profile := fmt.Sprintf("n%d", i)
			fmt.Fprintf(&bfdd, " profile %s\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier %d\n exit\n !\n",
				profile, t.ReceiveMs, t.TransmitMs, t.Multiplier)
			fmt.Fprintf(&bgpd, " neighbor %s bfd\n neighbor %s bfd profile %s\n", a, a, profile)
		}
		for _, f := range fams {
			active[f] = append(active[f], a)
		}
	}
	bfdd.WriteString("exit\n!\n")

	nets := map[Family][]netip.Prefix{}
	for _, p := range c.Networks {
		if !p.IsValid() {
			return nil, errors.New("frr: invalid network")
		}
		f := familyOf(p.Addr())
		nets[f] = append(nets[f], p.Masked())
	}
	for _, f := range []Family{IPv4, IPv6} {
		fmt.Fprintf(&bgpd, " !\n address-family %s unicast\n", f)
		fmt.Fprintf(&bgpd, "  maximum-paths %d\n  maximum-paths ibgp %d\n", paths, paths)
		for _, p := range nets[f] {
			bgpd.WriteString("  network ")
			bgpd.WriteString(p.String())
			bgpd.WriteByte('\n')
		}
		for _, a := range active[f] {
			fmt.Fprintf(&bgpd, "  neighbor %s activate\n", a)
		}
		bgpd.WriteString(" exit-address-family\n")
	}
	bgpd.WriteString("exit\n!\n")
	return map[string]string{
		"zebra.conf": zebra.String(),
		"bfdd.conf":  bfdd.String(),
		"bgpd.conf":  bgpd.String(),
	}, nil
}
