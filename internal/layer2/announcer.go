// Package layer2 announces LoadBalancer addresses on a LAN the way a host
// that held them would: it answers ARP requests (IPv4) and Neighbor
// Solicitations (IPv6) for the addresses this node owns, sends gratuitous
// announcements when it takes an address over, and can ask the LAN who else
// answers for an address (to detect a split brain).
//
// The addresses are never configured on the interface. Frames are read and
// written through packet (AF_PACKET) sockets, which need CAP_NET_RAW, so
// answers do not depend on the kernel treating the address as local. An
// ICMPv6 socket from mdlayher/ndp joins the solicited-node multicast groups,
// so that the NIC's filter and MLD-snooping switches deliver the
// solicitations to us.
//
// An Announcer serves one interface. The caller watches interfaces and
// replaces an Announcer when its interface goes away or changes address.
package layer2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/time/rate"
)

// Defaults of Options.
const (
	DefaultGratuitousCount    = 3
	DefaultGratuitousInterval = 200 * time.Millisecond
)

var (
	// ErrClosed is returned by Run and Probe after Close.
	ErrClosed = errors.New("layer2: announcer closed")
	// ErrNotServing is returned by Probe when Run is not serving: answers
	// to a probe are read by Run's loop.
	ErrNotServing = errors.New("layer2: Probe needs Run to be serving")
)

// Options configures an Announcer.
type Options struct {
	// Interface is the name of the interface to serve, e.g. "eth0".
	Interface string
	// GratuitousCount is how many announcements are sent when an address
	// is taken over: a gratuitous ARP request and reply for IPv4, one
	// unsolicited Neighbor Advertisement for IPv6. Zero means
	// DefaultGratuitousCount; a negative value sends none. More than one
	// because a single frame can be lost, and then neighbors keep sending
	// to the old owner until their cache entry expires.
	GratuitousCount int
	// GratuitousInterval is the time between two announcements. Zero or
	// less means DefaultGratuitousInterval.
	GratuitousInterval time.Duration
	// Logger receives the Announcer's logs; nil discards them.
	Logger *slog.Logger
}

// Stats counts what an Announcer did with the frames it received and
// sent, for metrics. Ignored frames are well formed but not for us (a
// request for another address, a reply, our own frame); malformed ones
// could not be parsed or broke a validity rule (a wrong hop limit or
// checksum, say). The sockets' kernel filters drop most frames that are
// not for us before we receive them (requests for addresses we do not
// own, while we own at most maxFilterAddrs of the family), and those are
// not counted at all.
type Stats struct {
	ARPAnswered  uint64 // ARP requests answered
	ARPIgnored   uint64 // ARP frames not answered
	ARPMalformed uint64 // ARP frames dropped as malformed
	NDPAnswered  uint64 // Neighbor Solicitations answered
	NDPIgnored   uint64 // NDP frames not answered
	NDPMalformed uint64 // NDP frames dropped as malformed
	// GratuitousSent counts announcement frames sent on takeover.
	GratuitousSent uint64
	SendErrors     uint64 // frames the kernel refused to send
	ReadErrors     uint64 // failed reads from the sockets
}

// counters is the live, atomic form of Stats.
type counters struct {
	arpAnswered, arpIgnored, arpMalformed atomic.Uint64
	ndpAnswered, ndpIgnored, ndpMalformed atomic.Uint64
	gratuitous, sendErrors, readErrors    atomic.Uint64
}

// groupConn joins and leaves IPv6 multicast groups on the interface; it is
// an *ndp.Conn outside the tests.
type groupConn interface {
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

// membership is one solicited-node group, shared by every owned address
// with the same low 24 bits.
type membership struct {
	refs   int
	joined bool
}

// probe collects the other owners of an address while Probe waits.
type probe struct {
	macs []net.HardwareAddr // guarded by Announcer.pmu
}

// Announcer answers ARP and NDP for the addresses it owns on one
// interface. Its methods are safe for concurrent use.
type Announcer struct {
	log       *slog.Logger
	ifname    string
	mac       net.HardwareAddr
	ipv4      netip.Addr // sender address of ARP probes; 0.0.0.0 if none
	linkLocal netip.Addr // source of our probes; invalid if NDP is off
	bufSize   int
	count     int
	interval  time.Duration

	arp   net.PacketConn // ARP frames
	ndp   net.PacketConn // NS and NA frames; nil if NDP is off
	mcast groupConn      // nil if NDP is off

	// fmu serializes the updates of the sockets' filters, so that the
	// last one installed was built from the latest owned and probed sets.
	fmu sync.Mutex

	// dropLog and errLog rate-limit the logs of the receive path, which a
	// busy or hostile LAN could otherwise flood.
	dropLog, errLog rate.Sometimes

	// mu guards the owned set. Readers hold it while deciding and sending
	// an answer, so that once SetOwned returns no answer for a removed
	// address can still be on its way out.
	mu     sync.RWMutex
	closed bool
	owned  map[netip.Addr]context.CancelFunc // cancels the address's burst
	groups map[netip.Addr]*membership        // by solicited-node address
	stop   context.CancelFunc                // cancels every burst, on Close
	base   context.Context

	bursts  sync.WaitGroup
	running atomic.Bool

	pmu    sync.Mutex
	probes map[netip.Addr][]*probe

	stats counters
}

// New opens the sockets of an Announcer on opts.Interface: a packet socket
// for ARP and, if the interface has an IPv6 link-local address, a packet
// socket for Neighbor Discovery and an ICMPv6 socket for multicast groups
// (which joins nothing until an IPv6 address is owned). Without a
// link-local address NDP is off: owned IPv6 addresses are not answered and
// Probe refuses them. New needs CAP_NET_RAW.
func New(opts Options) (*Announcer, error) {
	if opts.Interface == "" {
		return nil, errors.New("layer2: no interface given")
	}
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("layer2: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("layer2: interface %s has no Ethernet address", ifi.Name)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("layer2: addresses of %s: %w", ifi.Name, err)
	}
	var ipv4, linkLocal netip.Addr
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		switch {
		case ip.Is4() && !ipv4.IsValid():
			ipv4 = ip
		case ip.Is6() && ip.IsLinkLocalUnicast() && !linkLocal.IsValid():
			linkLocal = ip
		}
	}
	if !ipv4.IsValid() {
		ipv4 = netip.IPv4Unspecified()
	}

	a := newAnnouncer(opts, ifi.Name, ifi.HardwareAddr, ipv4, linkLocal, ifi.MTU)
	// Nothing is owned or probed yet: the filters pass no request until
	// SetOwned or Probe installs theirs.
	arpBPF, err := arpOwnedFilter(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("layer2: %w", err)
	}
	if a.arp, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), &packet.Config{Filter: arpBPF}); err != nil {
		return nil, fmt.Errorf("layer2: opening the ARP socket on %s: %w", ifi.Name, err)
	}
	if !linkLocal.IsValid() {
		a.log.Warn("interface has no IPv6 link-local address: NDP is off")
		return a, nil
	}
	if err := a.openNDP(ifi); err != nil {
		_ = a.arp.Close()
		return nil, fmt.Errorf("layer2: opening the NDP sockets on %s: %w", ifi.Name, err)
	}
	return a, nil
}

// openNDP opens the NDP packet socket and the ICMPv6 socket that holds the
// multicast memberships.
func (a *Announcer) openNDP(ifi *net.Interface) error {
	ndpBPF, err := ndpOwnedFilter(nil, nil)
	if err != nil {
		return err
	}
	pc, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeIPv6), &packet.Config{Filter: ndpBPF})
	if err != nil {
		return err
	}
	// The ICMPv6 socket only holds memberships: it is not bound to an
	// address (so a tentative link-local address does not make New fail)
	// and it filters out every message, so its queue never fills.
	mc, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		_ = pc.Close()
		return err
	}
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := mc.SetICMPFilter(&none); err != nil {
		_ = pc.Close()
		_ = mc.Close()
		return err
	}
	a.ndp, a.mcast = pc, mc
	return nil
}

// newAnnouncer builds an Announcer without sockets; New and the tests add
// them.
func newAnnouncer(opts Options, ifname string, mac net.HardwareAddr, ipv4, linkLocal netip.Addr, mtu int) *Announcer {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	count := opts.GratuitousCount
	switch {
	case count == 0:
		count = DefaultGratuitousCount
	case count < 0:
		count = 0
	}
	interval := opts.GratuitousInterval
	if interval <= 0 {
		interval = DefaultGratuitousInterval
	}
	base, stop := context.WithCancel(context.Background())
	return &Announcer{
		log:       log.With("interface", ifname),
		ifname:    ifname,
		mac:       slices.Clone(mac),
		ipv4:      ipv4,
		linkLocal: linkLocal,
		// Room for a full frame with a VLAN tag; longer frames are
		// truncated and then rejected by the length checks.
		bufSize:  max(mtu, 1500) + ethHeaderLen + 4,
		count:    count,
		interval: interval,
		dropLog:  rate.Sometimes{First: 10, Interval: 10 * time.Second},
		errLog:   rate.Sometimes{First: 10, Interval: 10 * time.Second},
		owned:    make(map[netip.Addr]context.CancelFunc),
		groups:   make(map[netip.Addr]*membership),
		base:     base,
		stop:     stop,
		probes:   make(map[netip.Addr][]*probe),
	}
}

// normalize returns the form of ip the owned set uses, and whether ip can
// be owned at all.
func normalize(ip netip.Addr) (netip.Addr, bool) {
	ip = ip.Unmap().WithZone("")
	ok := ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsLoopback()
	return ip, ok
}

// Run reads and answers ARP and NDP frames until ctx is done (it then
// returns nil) or the Announcer is closed. Malformed and foreign frames
// are counted, logged at debug level (rate-limited) and skipped; read
// errors (the interface going down, say) are logged and retried, so one
// Run lasts as long as the Announcer. Only one Run may serve at a time.
func (a *Announcer) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("layer2: Run is already serving")
	}
	defer a.running.Store(false)
	if a.isClosed() {
		return ErrClosed
	}

	type reader struct {
		conn   net.PacketConn
		handle func([]byte)
	}
	readers := []reader{{a.arp, a.handleARP}}
	if a.ndp != nil {
		readers = append(readers, reader{a.ndp, a.handleNDP})
	}
	for _, r := range readers {
		_ = r.conn.SetReadDeadline(time.Time{})
	}
	// A deadline in the past wakes the blocked reads when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		for _, r := range readers {
			_ = r.conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()

	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Go(func() { a.serve(ctx, r.conn, r.handle) })
	}
	wg.Wait()
	return nil
}

// serve is one read loop of Run.
func (a *Announcer) serve(ctx context.Context, c net.PacketConn, handle func([]byte)) {
	buf := make([]byte, a.bufSize)
	const minBackoff, maxBackoff = 50 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		n, _, err := c.ReadFrom(buf)
		if err == nil {
			backoff = minBackoff
			handle(buf[:n])
			continue
		}
		switch {
		case ctx.Err() != nil, a.isClosed():
			// The error is the shutdown itself (the past deadline or the
			// closed socket, whose error packet.Conn does not normalize).
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			// A past deadline left by an earlier Run's shutdown.
			_ = c.SetReadDeadline(time.Time{})
			continue
		}
		a.stats.readErrors.Add(1)
		a.errLog.Do(func() { a.log.Warn("reading frames failed; retrying", "error", err, "retryIn", backoff) })
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// handleARP answers one frame from the ARP socket.
func (a *Announcer) handleARP(frame []byte) {
	a.mu.RLock()
	d := decideARP(frame, a.mac, a.ownsLocked)
	if d.verdict == verdictAnswer && !a.write(a.arp, d.reply) {
		d.verdict = verdictIgnored
		d.reason = "answer not sent"
	}
	a.mu.RUnlock()
	a.account("ARP", d, &a.stats.arpAnswered, &a.stats.arpIgnored, &a.stats.arpMalformed)
}

// handleNDP answers one frame from the NDP socket.
func (a *Announcer) handleNDP(frame []byte) {
	a.mu.RLock()
	d := decideNDP(frame, a.mac, a.ownsLocked)
	if d.verdict == verdictAnswer && !a.write(a.ndp, d.reply) {
		d.verdict = verdictIgnored
		d.reason = "answer not sent"
	}
	a.mu.RUnlock()
	a.account("NDP", d, &a.stats.ndpAnswered, &a.stats.ndpIgnored, &a.stats.ndpMalformed)
}

// isClosed reports whether Close was called.
func (a *Announcer) isClosed() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.closed
}

// ownsLocked reports whether ip is owned; a.mu must be held.
func (a *Announcer) ownsLocked(ip netip.Addr) bool {
	_, ok := a.owned[ip]
	return ok
}

// account counts a decision, logs what was dropped and feeds probes.
func (a *Announcer) account(proto string, d decision, answered, ignored, malformed *atomic.Uint64) {
	switch d.verdict {
	case verdictAnswer:
		answered.Add(1)
	case verdictIgnored:
		ignored.Add(1)
	case verdictMalformed:
		malformed.Add(1)
	}
	if d.verdict != verdictAnswer {
		a.dropLog.Do(func() {
			a.log.Debug("frame not answered", "protocol", proto, "reason", d.reason,
				"malformed", d.verdict == verdictMalformed, "target", d.target)
		})
	}
	if d.claimIP.IsValid() {
		a.notifyProbes(d.claimIP, d.claimMAC)
	}
}

// write sends one complete Ethernet frame, reporting success.
func (a *Announcer) write(c net.PacketConn, frame []byte) bool {
	if err := a.send(c, frame); err != nil {
		a.stats.sendErrors.Add(1)
		a.errLog.Do(func() { a.log.Warn("sending a frame failed", "error", err) })
		return false
	}
	return true
}

// send writes frame to c, addressed to the frame's own destination.
func (a *Announcer) send(c net.PacketConn, frame []byte) error {
	_, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

// SetOwned replaces the set of owned addresses (IPv4 and IPv6, mixed).
// Added addresses are answered at once and announced with a burst of
// gratuitous frames; removed addresses are no longer answered or announced
// once SetOwned returns, and their solicited-node group is left when no
// other owned address needs it. Unusable addresses (invalid, unspecified,
// multicast, loopback) are logged and skipped.
func (a *Announcer) SetOwned(ips []netip.Addr) {
	next := make(map[netip.Addr]struct{}, len(ips))
	for _, ip := range ips {
		n, ok := normalize(ip)
		if !ok {
			a.log.Warn("cannot announce this address; skipped", "address", ip)
			continue
		}
		next[n] = struct{}{}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	for ip, cancel := range a.owned {
		if _, keep := next[ip]; keep {
			continue
		}
		cancel()
		delete(a.owned, ip)
		if ip.Is6() && a.mcast != nil {
			a.releaseGroupLocked(ip)
		}
		a.log.Info("stopped announcing", "address", ip)
	}
	// Retry the joins that failed in an earlier call (the interface had
	// no IPv6 for a moment, say).
	for g, m := range a.groups {
		if !m.joined {
			a.joinLocked(g, m)
		}
	}
	for ip := range next {
		if _, had := a.owned[ip]; had {
			continue
		}
		ctx, cancel := context.WithCancel(a.base)
		a.owned[ip] = cancel
		if ip.Is6() {
			if a.mcast == nil {
				a.log.Warn("NDP is off on this interface; IPv6 address not announced", "address", ip)
				continue
			}
			a.acquireGroupLocked(ip)
		}
		a.log.Info("announcing", "address", ip)
		if a.count > 0 {
			a.bursts.Add(1)
			go a.burst(ctx, ip)
		}
	}
	// Before returning: the new addresses are answered, the removed ones
	// no longer reach us.
	a.refilterLocked()
}

// bpfConn is a socket whose kernel filter can be replaced, as a
// packet.Conn's can.
type bpfConn interface {
	SetBPF(filter []bpf.RawInstruction) error
}

// refilterLocked installs the sockets' filters for the owned and probed
// addresses; a.mu must be held. If a filter cannot be built or installed,
// it falls back to the permissive one, so that no owned address goes
// unanswered.
func (a *Announcer) refilterLocked() {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	if a.closed {
		return
	}
	owned := make([]netip.Addr, 0, len(a.owned))
	for ip := range a.owned {
		owned = append(owned, ip)
	}
	a.pmu.Lock()
	probing := make([]netip.Addr, 0, len(a.probes))
	for ip := range a.probes {
		probing = append(probing, ip)
	}
	a.pmu.Unlock()
	type filter struct {
		conn              net.PacketConn
		build, permissive func() ([]bpf.RawInstruction, error)
	}
	filters := []filter{{a.arp, func() ([]bpf.RawInstruction, error) { return arpOwnedFilter(owned, probing) }, arpFilter}}
	if a.ndp != nil {
		filters = append(filters, filter{a.ndp, func() ([]bpf.RawInstruction, error) { return ndpOwnedFilter(owned, probing) }, ndpFilter})
	}
	for _, f := range filters {
		c, ok := f.conn.(bpfConn)
		if !ok {
			continue
		}
		prog, err := f.build()
		if err == nil {
			err = c.SetBPF(prog)
		}
		if err == nil {
			continue
		}
		a.log.Warn("installing the socket filter failed; passing every frame", "error", err)
		if prog, err = f.permissive(); err == nil {
			err = c.SetBPF(prog)
		}
		if err != nil {
			a.log.Error("installing the permissive socket filter failed", "error", err)
		}
	}
}

// acquireGroupLocked takes a reference on ip's solicited-node group.
func (a *Announcer) acquireGroupLocked(ip netip.Addr) {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return
	}
	m := a.groups[g]
	if m == nil {
		m = &membership{}
		a.groups[g] = m
	}
	m.refs++
	if !m.joined {
		a.joinLocked(g, m)
	}
}

// joinLocked joins group g.
func (a *Announcer) joinLocked(g netip.Addr, m *membership) {
	if err := a.mcast.JoinGroup(g); err != nil {
		a.log.Warn("joining the solicited-node group failed; multicast solicitations may not reach us", "group", g, "error", err)
		return
	}
	m.joined = true
}

// releaseGroupLocked drops a reference on ip's solicited-node group and
// leaves it with the last one.
func (a *Announcer) releaseGroupLocked(ip netip.Addr) {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return
	}
	m := a.groups[g]
	if m == nil {
		return
	}
	if m.refs--; m.refs > 0 {
		return
	}
	delete(a.groups, g)
	if m.joined {
		if err := a.mcast.LeaveGroup(g); err != nil {
			a.log.Warn("leaving the solicited-node group failed", "group", g, "error", err)
		}
	}
}

// burst sends the takeover announcements for ip, stopping early when ip is
// removed or the Announcer closed.
func (a *Announcer) burst(ctx context.Context, ip netip.Addr) {
	defer a.bursts.Done()
	var conn net.PacketConn
	var frames [][]byte
	if ip.Is4() {
		g := gratuitousARP(a.mac, ip)
		conn, frames = a.arp, g[:]
	} else {
		f, err := unsolicitedNA(a.mac, ip)
		if err != nil {
			a.log.Error("building the unsolicited advertisement failed", "address", ip, "error", err)
			return
		}
		conn, frames = a.ndp, [][]byte{f}
	}
	for i := range a.count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.interval):
			}
		}
		// Under the read lock, so that a SetOwned that removes ip (and
		// cancels ctx under the write lock) cannot return while a frame
		// for ip is being sent.
		a.mu.RLock()
		if ctx.Err() == nil {
			for _, f := range frames {
				if a.write(conn, f) {
					a.stats.gratuitous.Add(1)
				}
			}
		}
		a.mu.RUnlock()
	}
}

// Owned returns the owned addresses, sorted.
func (a *Announcer) Owned() []netip.Addr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]netip.Addr, 0, len(a.owned))
	for ip := range a.owned {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Probe asks the LAN who has ip, with an ARP request from the interface's
// IPv4 address (0.0.0.0 if it has none, an RFC 5227 probe) or a Neighbor
// Solicitation from its link-local address, sent again halfway through
// timeout. It returns the hardware address of every other station that
// answered or announced ip within timeout, in order of arrival; none means
// nobody else claims ip. Whether this node owns ip does not matter: our
// own answers are never counted. Probe needs Run to be serving.
//
// If ctx ends first, Probe returns what it found so far with ctx's error.
func (a *Announcer) Probe(ctx context.Context, ip netip.Addr, timeout time.Duration) ([]net.HardwareAddr, error) {
	found, err := a.ProbeAll(ctx, []netip.Addr{ip}, timeout)
	return found[ip], err
}

// ProbeAll is Probe for many addresses at once: their requests go out
// together, again halfway through timeout, and one wait serves them all.
// The answers are keyed by the addresses as given; an address nobody else
// claims has none. An address that cannot be probed (an IPv6 address
// with NDP off) or whose request could not be sent is named in the error,
// and the others are probed all the same. Probing an address costs a change of the socket filter
// (so that other stations' answers for it get through) and, alone, two
// timers and their wakeups: a node that checks its addresses for
// conflicts in rounds pays that once per round, not once per address.
func (a *Announcer) ProbeAll(ctx context.Context, ips []netip.Addr, timeout time.Duration) (map[netip.Addr][]net.HardwareAddr, error) {
	type job struct {
		ip, norm netip.Addr
		conn     net.PacketConn
		frame    []byte
		p        *probe
	}
	jobs := make([]job, 0, len(ips))
	seen := make(map[netip.Addr]bool, len(ips))
	var errs []error
	for _, given := range ips {
		if seen[given] {
			continue
		}
		seen[given] = true
		ip, ok := normalize(given)
		if !ok {
			errs = append(errs, fmt.Errorf("layer2: cannot probe %v", given))
			continue
		}
		j := job{ip: given, norm: ip, p: &probe{}}
		if ip.Is4() {
			j.conn = a.arp
			j.frame = arpFrame(arp.OperationRequest, ethernet.Broadcast, a.mac, a.ipv4, zeroMAC, ip)
		} else {
			if a.ndp == nil {
				errs = append(errs, fmt.Errorf("layer2: cannot probe %s: NDP is off on %s", ip, a.ifname))
				continue
			}
			j.conn = a.ndp
			var err error
			if j.frame, err = probeNS(a.mac, a.linkLocal, ip); err != nil {
				errs = append(errs, fmt.Errorf("layer2: probing %s: %w", ip, err))
				continue
			}
		}
		jobs = append(jobs, j)
	}
	if a.isClosed() {
		return nil, ErrClosed
	}
	if !a.running.Load() {
		return nil, ErrNotServing
	}
	if len(jobs) == 0 {
		return map[netip.Addr][]net.HardwareAddr{}, errors.Join(errs...)
	}

	a.pmu.Lock()
	for _, j := range jobs {
		a.probes[j.norm] = append(a.probes[j.norm], j.p)
	}
	a.pmu.Unlock()
	// The other owners' frames must pass the kernel filter from now on.
	a.refilter()
	defer func() {
		a.pmu.Lock()
		for _, j := range jobs {
			rest := slices.DeleteFunc(a.probes[j.norm], func(q *probe) bool { return q == j.p })
			if len(rest) == 0 {
				delete(a.probes, j.norm)
			} else {
				a.probes[j.norm] = rest
			}
		}
		a.pmu.Unlock()
		a.refilter()
	}()
	result := func() map[netip.Addr][]net.HardwareAddr {
		a.pmu.Lock()
		defer a.pmu.Unlock()
		out := make(map[netip.Addr][]net.HardwareAddr, len(jobs))
		for _, j := range jobs {
			if len(j.p.macs) > 0 {
				out[j.ip] = append(out[j.ip], j.p.macs...)
			}
		}
		return out
	}

	// A request that could not be sent is named in the error: silence
	// then does not mean that nobody claims the address.
	for _, j := range jobs {
		if err := a.send(j.conn, j.frame); err != nil {
			a.stats.sendErrors.Add(1)
			errs = append(errs, fmt.Errorf("layer2: probing %s: %w", j.norm, err))
		}
	}
	end := time.NewTimer(timeout)
	defer end.Stop()
	again := time.NewTimer(timeout / 2)
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return result(), errors.Join(append(errs, ctx.Err())...)
		case <-again.C:
			for _, j := range jobs {
				a.write(j.conn, j.frame)
			}
		case <-end.C:
			return result(), errors.Join(errs...)
		}
	}
}

// refilter is refilterLocked for callers without a.mu.
func (a *Announcer) refilter() {
	a.mu.RLock()
	defer a.mu.RUnlock()
	a.refilterLocked()
}

// notifyProbes records that mac claims ip, for the running probes of ip.
func (a *Announcer) notifyProbes(ip netip.Addr, mac net.HardwareAddr) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	for _, p := range a.probes[ip] {
		if !slices.ContainsFunc(p.macs, func(m net.HardwareAddr) bool { return string(m) == string(mac) }) {
			p.macs = append(p.macs, slices.Clone(mac))
		}
	}
}

// Stats returns a snapshot of the counters.
func (a *Announcer) Stats() Stats {
	s := &a.stats
	return Stats{
		ARPAnswered:    s.arpAnswered.Load(),
		ARPIgnored:     s.arpIgnored.Load(),
		ARPMalformed:   s.arpMalformed.Load(),
		NDPAnswered:    s.ndpAnswered.Load(),
		NDPIgnored:     s.ndpIgnored.Load(),
		NDPMalformed:   s.ndpMalformed.Load(),
		GratuitousSent: s.gratuitous.Load(),
		SendErrors:     s.sendErrors.Load(),
		ReadErrors:     s.readErrors.Load(),
	}
}

// HardwareAddr returns the interface's MAC, the one every answer carries.
func (a *Announcer) HardwareAddr() net.HardwareAddr { return slices.Clone(a.mac) }

// Close stops the announcements, makes Run return and closes the sockets
// (which leaves the multicast groups). It is safe to call more than once.
func (a *Announcer) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.stop()
	clear(a.owned)
	clear(a.groups)
	a.mu.Unlock()
	a.bursts.Wait()

	var errs []error
	for _, c := range []interface{ Close() error }{a.arp, a.ndp, a.mcast} {
		if c == nil {
			continue
		}
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
