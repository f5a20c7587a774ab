package routers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BIRDConfig describes one BIRD 2 router in a namespace.
type BIRDConfig struct {
	// Namespace is the network namespace the daemon runs in (required).
	Namespace string
	// Dir is the working directory (created if missing): bird.conf,
	// bird.ctl (the control socket), bird.pid, bird.log and bird.out.
	Dir string
	// RouterID is the router ID (an IPv4 address).
	RouterID netip.Addr
	// ASN is the router's own AS number.
	ASN uint32
	// Neighbors are the BGP peers, one `protocol bgp` each.
	Neighbors []BIRDNeighbor
	// Static are routes BIRD originates: blackhole static routes that
	// every neighbor exports, with the communities given.
	Static []BIRDStatic
	// BFD are the timers of every BFD session; zero fields take the lab
	// defaults (300 ms, 300 ms, 3).
	BFD BFDTimers
	// NoKernel keeps BGP routes out of the namespace's kernel table. By
	// default BIRD installs them, ECMP merged (up to 8 next hops), as a
	// router that forwards traffic does.
	NoKernel bool
	// KeepaliveSec and HoldSec set the BGP timers; zero keeps BIRD's
	// defaults (hold 240 s, keepalive a third of it).
	KeepaliveSec, HoldSec int
	// Bird and Birdc are the binaries; default "bird" and "birdc" from
	// PATH.
	Bird, Birdc string
}

// BIRDNeighbor is one BGP peer of a BIRD router.
type BIRDNeighbor struct {
	// Name is the protocol name in birdc's output; defaults to n0, n1, ...
	// by position.
	Name      string
	Address   netip.Addr
	RemoteASN uint32
	// Password enables TCP MD5 authentication.
	Password string
	// BFD runs a BFD session with the peer (timers from BIRDConfig.BFD);
	// BFD Down takes the session down.
	BFD bool
	// Multihop, when positive, is the TTL for a peer that is not directly
	// connected; BIRD then resolves next hops through its kernel and
	// device routes.
	Multihop int
	// Passive makes BIRD wait for the peer to connect.
	Passive bool
	// Families to carry; empty means IPv4 and IPv6 (MP-BGP).
	Families []Family
}

// BIRDStatic is a route BIRD originates.
type BIRDStatic struct {
	Prefix netip.Prefix
	// Communities ("64513:100") and LargeCommunities ("64513:1:2") are
	// attached to the route.
	Communities      []string
	LargeCommunities []string
}

// BIRD is a running BIRD router.
type BIRD struct {
	cfg   BIRDConfig
	dir   string
	birdc string

	mu      sync.Mutex
	d       *daemon
	stopped bool
}

// StartBIRD writes the configuration of cfg, starts BIRD in the foreground
// (-f) in cfg.Namespace with a private control socket (-s) and pid file
// (-P), and returns once birdc gets an answer. Call Stop when done, also
// after an error is returned: BIRD may be running.
func StartBIRD(ctx context.Context, cfg BIRDConfig) (*BIRD, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("bird: Namespace is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("bird: Dir is required")
	}
	if cfg.Bird == "" {
		cfg.Bird = "bird"
	}
	if cfg.Birdc == "" {
		cfg.Birdc = "birdc"
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	text, err := cfg.config(dir)
	if err != nil {
		return nil, err
	}
	bird, err := exec.LookPath(cfg.Bird)
	if err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	birdc, err := exec.LookPath(cfg.Birdc)
	if err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	ctl := filepath.Join(dir, "bird.ctl")
	_ = os.Remove(ctl)
	b := &BIRD{cfg: cfg, dir: dir, birdc: birdc}
	b.d, err = startDaemon(cfg.Namespace, dir, "bird", []string{bird, "-f", "-c", conf, "-s", ctl, "-P", filepath.Join(dir, "bird.pid")})
	if err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	err = poll(ctx, 10*time.Second, 20*time.Millisecond, func() error {
		if b.d.exited() {
			return fmt.Errorf("bird exited: %w; see %s", b.d.err, filepath.Join(dir, "bird.out"))
		}
		_, err := b.Birdc(ctx, "show", "status")
		return err
	})
	if err != nil {
		return b, err
	}
	return b, nil
}

// Dir is the router's working directory.
func (b *BIRD) Dir() string { return b.dir }

// Stop ends BIRD (SIGTERM, SIGKILL after a second) and removes its
// control socket. It is idempotent, and a no-op on a nil *BIRD.
func (b *BIRD) Stop() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil
	}
	b.stopped = true
	b.mu.Unlock()
	if b.d != nil {
		b.d.stop(time.Second)
	}
	_ = os.Remove(filepath.Join(b.dir, "bird.ctl"))
	return nil
}

// Signal sends sig to BIRD, for fault injection: SIGSTOP freezes it with
// its TCP sessions open (only BFD or the hold timer notice), SIGKILL
// crashes it (the kernel resets its sessions).
func (b *BIRD) Signal(sig syscall.Signal) error {
	if b.d == nil {
		return errors.New("bird: not started")
	}
	return b.d.signal(sig)
}

// Birdc runs `birdc -s CTL args...` and returns its output. BIRD's errors
// (a syntax error, no such protocol) make birdc exit 1, and come back as
// an error with the text BIRD printed.
func (b *BIRD) Birdc(ctx context.Context, args ...string) ([]byte, error) {
	out, err := runOutput(ctx, b.birdc, append([]string{"-s", filepath.Join(b.dir, "bird.ctl")}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("bird: %w", err)
	}
	return out, nil
}

// BIRDProtocol is one line of `birdc show protocols`.
type BIRDProtocol struct {
	Name, Proto, Table, State, Since string
	// Info is the last column: "Established", "Active", "Connect", or a
	// reason such as "Error: ...".
	Info string
}

// Protocols returns BIRD's protocols by name, from `birdc show protocols`:
//
//	BIRD 2.0.12 ready.
//	Name       Proto      Table      State  Since         Info
//	n0         BGP        ---        up     15:20:10.521  Established
func (b *BIRD) Protocols(ctx context.Context) (map[string]BIRDProtocol, error) {
	out, err := b.Birdc(ctx, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out), nil
}

func parseBIRDProtocols(out []byte) map[string]BIRDProtocol {
	res := map[string]BIRDProtocol{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] == "Name" || f[0] == "BIRD" {
			continue
		}
		p := BIRDProtocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: f[4]}
		if len(f) > 5 {
			p.Info = strings.Join(f[5:], " ")
		}
		res[p.Name] = p
	}
	return res
}

// BIRDRoute is one route of `birdc show route all`.
type BIRDRoute struct {
	Prefix netip.Prefix
	// Kind is the route type: "unicast", "blackhole", "unreachable", ...
	Kind string
	// Protocol is the protocol that holds the route: a neighbor's name
	// for a BGP route.
	Protocol string
	// Primary marks the route BIRD selected for the prefix ("*").
	Primary bool
	// Type is the Type attribute, e.g. "BGP univ" or "static univ".
	Type string
	// NextHops are the addresses of its "via" lines (several for an
	// ECMP route); Interfaces are the interfaces named there.
	NextHops   []netip.Addr
	Interfaces []string
	// ASPath is BGP.as_path ("64512 64514").
	ASPath string
	// Communities ("64512:100") and LargeCommunities ("64512:1:2")
	// come from BGP.community and BGP.large_community.
	Communities      []string
	LargeCommunities []string
	// LocalPref is BGP.local_pref, nil if absent.
	LocalPref *uint32
	// Attrs holds every attribute line by name ("BGP.next_hop" → "...").
	Attrs map[string]string
}

// RouteDetails returns every route of BIRD's tables, parsed from
// `birdc show route all`. The output is a "Table NAME:" line per table,
// then per route a header line and tab-indented detail lines:
//
//	198.18.50.0/24       unicast [n0 15:20:11.571] * (100) [AS64512i]
//		via 198.18.0.1 on prt-b
//		Type: BGP univ
//		BGP.as_path: 64512
//		BGP.community: (64512,100) (64512,200)
//		BGP.large_community: (64512, 1, 2)
//	                     unicast [n1 15:20:12.002] (100) [AS64514i]
//		via 198.18.0.5 on prt-c
//
// A header starts with the prefix; a header that starts with spaces is
// another route to the previous prefix. The header's first bracket names
// the protocol and a "*" after it marks the primary route. Detail lines
// are "via ADDR on IFACE [weight N]" (one per next hop), "dev IFACE", or
// "NAME: VALUE" attributes; communities are printed as (a,b) and large
// ones as (a, b, c).
func (b *BIRD) RouteDetails(ctx context.Context) ([]BIRDRoute, error) {
	out, err := b.Birdc(ctx, "show", "route", "all")
	if err != nil {
		return nil, err
	}
	return parseBIRDRoutes(out)
}

// Routes returns, for each prefix BIRD learned over BGP (Type "BGP ..."),
// the next hops of all its BGP routes: the primary route's first, then the
// others', without duplicates. These are the paths a merge-paths kernel
// export turns into one ECMP route when they tie.
func (b *BIRD) Routes(ctx context.Context) (map[netip.Prefix][]netip.Addr, error) {
	routes, err := b.RouteDetails(ctx)
	if err != nil {
		return nil, err
	}
	return birdBGPNextHops(routes), nil
}

func birdBGPNextHops(routes []BIRDRoute) map[netip.Prefix][]netip.Addr {
	res := map[netip.Prefix][]netip.Addr{}
	// The primary route first: stable order in the slices below.
	ordered := slices.Clone(routes)
	slices.SortStableFunc(ordered, func(a, b BIRDRoute) int {
		switch {
		case a.Primary && !b.Primary:
			return -1
		case b.Primary && !a.Primary:
			return 1
		}
		return 0
	})
	for _, r := range ordered {
		if !strings.HasPrefix(r.Type, "BGP") {
			continue
		}
		for _, nh := range r.NextHops {
			if !slices.Contains(res[r.Prefix], nh) {
				res[r.Prefix] = append(res[r.Prefix], nh)
			}
		}
		if _, ok := res[r.Prefix]; !ok {
			res[r.Prefix] = nil // an unreachable BGP route is still known
		}
	}
	return res
}

var (
	birdCommunity      = regexp.MustCompile(`\((\d+),\s*(\d+)\)`)
	birdLargeCommunity = regexp.MustCompile(`\((\d+),\s*(\d+),\s*(\d+)\)`)
)

func parseBIRDRoutes(out []byte) ([]BIRDRoute, error) {
	var (
		routes []BIRDRoute
		cur    *BIRDRoute
		last   netip.Prefix
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "",
			strings.HasPrefix(line, "BIRD "),
			strings.HasPrefix(line, "Table "):
			continue
		case strings.HasPrefix(line, "\t"):
			if cur == nil {
				return nil, fmt.Errorf("bird: detail line before any route: %q", line)
			}
			parseBIRDDetail(cur, strings.TrimSpace(line))
			continue
		}
		// A route header, with its prefix or (leading spaces) without.
		f := strings.Fields(line)
		if !strings.HasPrefix(line, " ") {
			p, err := netip.ParsePrefix(f[0])
			if err != nil {
				return nil, fmt.Errorf("bird: route line %q: %w", line, err)
			}
			last = p
			f = f[1:]
		} else if !last.IsValid() {
			return nil, fmt.Errorf("bird: route line without a prefix: %q", line)
		}
		if len(f) < 2 || !strings.HasPrefix(f[1], "[") {
			return nil, fmt.Errorf("bird: unexpected route line %q", line)
		}
		r := BIRDRoute{Prefix: last, Kind: f[0], Protocol: strings.TrimPrefix(f[1], "["), Attrs: map[string]string{}}
		if i := strings.Index(line, "]"); i >= 0 {
			r.Primary = strings.HasPrefix(strings.TrimSpace(line[i+1:]), "*")
		}
		routes = append(routes, r)
		cur = &routes[len(routes)-1]
	}
	return routes, sc.Err()
}

func parseBIRDDetail(r *BIRDRoute, s string) {
	if rest, ok := strings.CutPrefix(s, "via "); ok {
		f := strings.Fields(rest)
		if a, err := netip.ParseAddr(f[0]); err == nil {
			r.NextHops = append(r.NextHops, a)
		}
		if len(f) >= 3 && f[1] == "on" {
			r.Interfaces = append(r.Interfaces, f[2])
		}
		return
	}
	if rest, ok := strings.CutPrefix(s, "dev "); ok {
		r.Interfaces = append(r.Interfaces, strings.Fields(rest)[0])
		return
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return
	}
	value = strings.TrimSpace(value)
	r.Attrs[name] = value
	switch name {
	case "Type":
		r.Type = value
	case "BGP.as_path":
		r.ASPath = value
	case "BGP.community":
		for _, m := range birdCommunity.FindAllStringSubmatch(value, -1) {
			r.Communities = append(r.Communities, m[1]+":"+m[2])
		}
	case "BGP.large_community":
		for _, m := range birdLargeCommunity.FindAllStringSubmatch(value, -1) {
			r.LargeCommunities = append(r.LargeCommunities, m[1]+":"+m[2]+":"+m[3])
		}
	case "BGP.local_pref":
		if v, err := strconv.ParseUint(value, 10, 32); err == nil {
			lp := uint32(v)
			r.LocalPref = &lp
		}
	}
}

// config renders bird.conf.
func (c BIRDConfig) config(dir string) (string, error) {
	if !c.RouterID.Is4() {
		return "", fmt.Errorf("bird: RouterID %v is not an IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		return "", errors.New("bird: ASN is required")
	}
	var w bytes.Buffer
	fmt.Fprintf(&w, "router id %s;\n", c.RouterID)
	fmt.Fprintf(&w, "log %q all;\n", filepath.Join(dir, "bird.log"))
	// The device protocol tells BIRD about interfaces: without it no
	// direct next hop resolves.
	w.WriteString("protocol device { scan time 10; }\n")

	multihop, bfd := false, false
	for _, n := range c.Neighbors {
		multihop = multihop || n.Multihop > 0
		bfd = bfd || n.BFD
	}
	for _, f := range []Family{IPv4, IPv6} {
		k := "k" + strings.TrimPrefix(string(f), "ipv")
		fmt.Fprintf(&w, "protocol kernel %s {\n", k)
		if multihop {
			// Multihop next hops resolve recursively through
			// master4/6, which then needs the kernel's routes.
			w.WriteString("  learn;\n")
			fmt.Fprintf(&w, "  %s { import all; ", f)
		} else {
			fmt.Fprintf(&w, "  %s { import none; ", f)
		}
		if c.NoKernel {
			w.WriteString("export none; };\n")
		} else {
			w.WriteString("export where source = RTS_BGP; };\n  merge paths on limit 8;\n")
		}
		w.WriteString("}\n")
	}
	if multihop {
		w.WriteString("protocol direct { ipv4; ipv6; }\n")
	}

	static := map[Family][]BIRDStatic{}
	for _, s := range c.Static {
		if !s.Prefix.IsValid() {
			return "", errors.New("bird: invalid static prefix")
		}
		f := familyOf(s.Prefix.Addr())
		static[f] = append(static[f], s)
	}
	for _, f := range []Family{IPv4, IPv6} {
		if len(static[f]) == 0 {
			continue
		}
		fmt.Fprintf(&w, "protocol static s%s {\n  %s;\n", strings.TrimPrefix(string(f), "ipv"), f)
		for _, s := range static[f] {
			fmt.Fprintf(&w, "  route %s blackhole", s.Prefix.Masked())
			var attrs []string
			for _, cm := range s.Communities {
				p, err := splitCommunity(cm, 2)
				if err != nil {
					return "", err
				}
				attrs = append(attrs, fmt.Sprintf("bgp_community.add((%s,%s));", p[0], p[1]))
			}
			for _, cm := range s.LargeCommunities {
				p, err := splitCommunity(cm, 3)
				if err != nil {
					return "", err
				}
				attrs = append(attrs, fmt.Sprintf("bgp_large_community.add((%s,%s,%s));", p[0], p[1], p[2]))
			}
			if len(attrs) > 0 {
				fmt.Fprintf(&w, " { %s }", strings.Join(attrs, " "))
			}
			w.WriteString(";\n")
		}
		w.WriteString("}\n")
	}

	if bfd {
		t := c.BFD.withDefaults()
		timers := fmt.Sprintf("min rx interval %d ms; min tx interval %d ms; multiplier %d;", t.ReceiveMs, t.TransmitMs, t.Multiplier)
		fmt.Fprintf(&w, "protocol bfd {\n  interface \"*\" { %s };\n  multihop { %s };\n}\n", timers, timers)
	}

	names := map[string]bool{}
	for i, n := range c.Neighbors {
		name := n.Name
		if name == "" {
			name = fmt.Sprintf("n%d", i)
		}
		if names[name] {
			return "", fmt.Errorf("bird: protocol name %q used twice", name)
		}
		names[name] = true
		if !n.Address.IsValid() || n.RemoteASN == 0 {
			return "", fmt.Errorf("bird: neighbor %s needs an address and a RemoteASN", name)
		}
		fams, err := families(n.Families)
		if err != nil {
			return "", fmt.Errorf("bird: neighbor %s: %w", name, err)
		}
		fmt.Fprintf(&w, "protocol bgp %s {\n", name)
		fmt.Fprintf(&w, "  local as %d;\n  neighbor %s as %d;\n", c.ASN, n.Address, n.RemoteASN)
		if n.Password != "" {
			if strings.ContainsAny(n.Password, "\"\\\n") {
				return "", fmt.Errorf("bird: neighbor %s: the password may not contain quotes, backslashes or newlines", name)
			}
			fmt.Fprintf(&w, "  password \"%s\";\n", n.Password)
		}
		if n.Multihop > 0 {
			fmt.Fprintf(&w, "  multihop %d;\n", n.Multihop)
		} else {
			// Also for iBGP, which BIRD otherwise takes as multihop.
			w.WriteString("  direct;\n")
		}
		if n.BFD {
			w.WriteString("  bfd on;\n")
		}
		if n.Passive {
			w.WriteString("  passive on;\n")
		}
		if c.HoldSec != 0 {
			fmt.Fprintf(&w, "  hold time %d;\n", c.HoldSec)
		}
		if c.KeepaliveSec != 0 {
			fmt.Fprintf(&w, "  keepalive time %d;\n", c.KeepaliveSec)
		}
		// Lab timing: BIRD's defaults wait 5 s before the first connect
		// and 60 s after an error, which would outlast a fault test.
		w.WriteString("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n")
		for _, f := range fams {
			fmt.Fprintf(&w, "  %s { import all; export where source = RTS_STATIC; };\n", f)
		}
		w.WriteString("}\n")
	}
	return w.String(), nil
}

// splitCommunity checks a community "a:b" (n=2) or a large community
// "a:b:c" (n=3) and returns its numbers.
func splitCommunity(s string, n int) ([]string, error) {
	p := strings.Split(s, ":")
	if len(p) != n {
		return nil, fmt.Errorf("bird: community %q: want %d numbers separated by colons", s, n)
	}
	for _, x := range p {
		bits := 32
		if n == 2 {
			bits = 16
		}
		if _, err := strconv.ParseUint(x, 10, bits); err != nil {
			return nil, fmt.Errorf("bird: community %q: %w", s, err)
		}
	}
	return p, nil
}
