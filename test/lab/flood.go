package main

// The l2flood subcommand: an ARP or Neighbor Solicitation flood from a
// packet socket, for addresses the speakers do not own, and at the same
// time a prober that asks for the addresses they do own every few
// milliseconds and counts the questions left unanswered. Run it in the
// lab's client namespace (test/bench/arpflood does).

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	ethARP  = 0x0806
	ethIPv6 = 0x86dd
)

// floodOptions configures one l2flood run.
type floodOptions struct {
	iface    string
	family   int // 4, 6, or 0 for no flood (a baseline of the prober alone)
	rate     float64
	duration time.Duration
	batch    int
	net4     netip.Prefix  // random targets and senders of the IPv4 flood
	net6     netip.Prefix  // same for IPv6
	others   []netip.Addr  // addresses other hosts own, asked too
	macs     int           // distinct random source MACs
	probe    []netip.Addr  // owned addresses to probe
	interval time.Duration // between two probes of one address
	timeout  time.Duration // a probe with no answer within it is missed
	seed     uint64
}

// runFlood prints one "flood ..." line and one "probe ..." line per probed
// address, as key=value fields.
func runFlood(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("l2flood", flag.ExitOnError)
	var o floodOptions
	var net4, net6, others, probes string
	fs.StringVar(&o.iface, "iface", "eth0", "interface")
	fs.IntVar(&o.family, "family", 4, "flood ARP (4), Neighbor Solicitations (6) or nothing (0)")
	fs.Float64Var(&o.rate, "rate", 100000, "target requests per second")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long")
	fs.IntVar(&o.batch, "batch", 64, "frames per sendmmsg")
	fs.StringVar(&net4, "net4", "198.18.112.0/20", "random IPv4 targets and senders nobody owns")
	fs.StringVar(&net6, "net6", "2001:db8:96:0:f100::/80", "random IPv6 targets and senders nobody owns")
	fs.StringVar(&others, "others", "", "addresses other hosts own, also asked for (1 request in 16), comma-separated")
	fs.IntVar(&o.macs, "macs", 65536, "distinct random source MACs (bounds the LAN bridge's forwarding table)")
	fs.StringVar(&probes, "probe", "", "owned addresses to probe, comma-separated")
	fs.DurationVar(&o.interval, "probe-interval", 10*time.Millisecond, "time between two probes of one address")
	fs.DurationVar(&o.timeout, "probe-timeout", 200*time.Millisecond, "a probe with no answer within this is missed")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	_ = fs.Parse(args)
	var err error
	if o.net4, err = netip.ParsePrefix(net4); err != nil || !o.net4.Addr().Is4() {
		return fmt.Errorf("--net4 %q: not an IPv4 prefix", net4)
	}
	if o.net6, err = netip.ParsePrefix(net6); err != nil || !o.net6.Addr().Is6() {
		return fmt.Errorf("--net6 %q: not an IPv6 prefix", net6)
	}
	if o.others, err = parseAddrs(others); err != nil {
		return fmt.Errorf("--others: %w", err)
	}
	if o.probe, err = parseAddrs(probes); err != nil {
		return fmt.Errorf("--probe: %w", err)
	}
	if o.family != 0 && o.family != 4 && o.family != 6 {
		return fmt.Errorf("--family %d: want 4, 6 or 0", o.family)
	}
	o.batch = max(1, o.batch)
	o.macs = max(1, o.macs)
	return flood(ctx, o)
}

func parseAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func flood(ctx context.Context, o floodOptions) error {
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return err
	}
	self4, self6, err := hostAddrs(ifi)
	if err != nil {
		return err
	}
	var probers []*prober
	for _, a := range o.probe {
		p, err := newProber(ifi, self4, self6, a, o.timeout)
		if err != nil {
			return err
		}
		defer unix.Close(p.fd)
		probers = append(probers, p)
	}
	var wg sync.WaitGroup
	for _, p := range probers {
		wg.Go(p.receive)
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	for _, p := range probers {
		wg.Go(func() { p.send(ctx, o.interval) })
	}
	dropped0 := txDropped(o.iface)
	var res floodResult
	if o.family != 0 {
		res, err = sendFlood(ctx, ifi, o)
	} else {
		<-ctx.Done()
		res.elapsed = o.duration
	}
	dropped := txDropped(o.iface) - dropped0
	// Give the last probes their time, then stop the receivers.
	time.Sleep(o.timeout + 50*time.Millisecond)
	for _, p := range probers {
		p.close()
	}
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Printf("flood family=%d sent=%d seconds=%.3f rate=%.0f target_rate=%.0f send_errors=%d tx_dropped=%d\n",
		o.family, res.sent, res.elapsed.Seconds(), float64(res.sent)/res.elapsed.Seconds(), o.rate, res.errors, dropped)
	for _, p := range probers {
		s := p.result()
		fmt.Printf("probe addr=%s sent=%d answered=%d missed=%d max_ms=%.1f macs=%s\n",
			p.target, s.sent, s.answered, s.missed, float64(s.maxLatency.Microseconds())/1000, strings.Join(s.macs, ","))
	}
	return nil
}

// hostAddrs returns the interface's first IPv4 address and first global
// IPv6 address (invalid when it has none).
func hostAddrs(ifi *net.Interface) (netip.Addr, netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	var v4, v6 netip.Addr
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP)
		ip = ip.Unmap()
		switch {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && !ip.IsLinkLocalUnicast() && !v6.IsValid():
			v6 = ip
		}
	}
	return v4, v6, nil
}

// txDropped reads the interface's transmit drops (a veth counts there the
// frames its peer's backlog refused).
func txDropped(iface string) uint64 {
	b, _ := os.ReadFile("/sys/class/net/" + iface + "/statistics/tx_dropped")
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

type floodResult struct {
	sent, errors uint64
	elapsed      time.Duration
}

// mmsghdr is struct mmsghdr of sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// sendFlood sends requests at o.rate until ctx ends, in batches of
// o.batch frames per sendmmsg. When the kernel cannot keep up it sends
// as fast as it can; the result counts what the kernel accepted.
func sendFlood(ctx context.Context, ifi *net.Interface, o floodOptions) (floodResult, error) {
	var res floodResult
	// Protocol 0: this socket receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)

	ethertype := uint16(ethARP)
	if o.family == 6 {
		ethertype = ethIPv6
	}
	var sa unix.RawSockaddrLinklayer
	sa.Family = unix.AF_PACKET
	sa.Protocol = htons(ethertype)
	sa.Ifindex = int32(ifi.Index)
	sa.Halen = 6

	const frameCap = 96
	bufs := make([]byte, o.batch*frameCap)
	iovs := make([]unix.Iovec, o.batch)
	msgs := make([]mmsghdr, o.batch)
	for i := range msgs {
		iovs[i].Base = &bufs[i*frameCap]
		msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&sa))
		msgs[i].hdr.Namelen = uint32(unsafe.Sizeof(sa))
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.Iovlen = 1
	}
	g := newFrameGen(o)
	start := time.Now()
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		due := int64(o.rate*elapsed.Seconds()) - int64(res.sent)
		if due <= 0 {
			// Sleep until the next batch is due.
			next := time.Duration(float64(res.sent+uint64(o.batch)) / o.rate * float64(time.Second))
			time.Sleep(min(max(next-elapsed, 50*time.Microsecond), time.Millisecond))
			continue
		}
		n := int(min(due, int64(o.batch)))
		for i := range n {
			f := bufs[i*frameCap : (i+1)*frameCap]
			iovs[i].SetLen(g.fill(f))
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if errno != 0 {
			res.errors++
			if errors.Is(errno, unix.ENOBUFS) || errors.Is(errno, unix.EAGAIN) || errors.Is(errno, unix.EINTR) {
				runtime.Gosched()
				continue
			}
			return res, fmt.Errorf("sendmmsg: %w", errno)
		}
		res.sent += uint64(r)
	}
	runtime.KeepAlive(bufs)
	runtime.KeepAlive(iovs)
	runtime.KeepAlive(&sa)
	res.elapsed = time.Since(start)
	return res, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frameGen writes random flood frames.
type frameGen struct {
	o       floodOptions
	r       *rand.Rand
	macSalt uint64
	others  []netip.Addr // o.others of the flood's family
}

func newFrameGen(o floodOptions) *frameGen {
	r := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	g := &frameGen{o: o, r: r, macSalt: r.Uint64()}
	for _, a := range o.others {
		if (o.family == 4) == a.Is4() {
			g.others = append(g.others, a)
		}
	}
	return g
}

// mac writes one of o.macs random, locally administered unicast MACs.
func (g *frameGen) mac(b []byte) {
	v := (uint64(g.r.IntN(g.o.macs))*0x9e3779b97f4a7c15 ^ g.macSalt) & (1<<40 - 1)
	b[0] = 0x02
	b[1], b[2], b[3], b[4], b[5] = byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// randomIn returns a random address of p.
func (g *frameGen) randomIn(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	if p.Addr().Is4() {
		b4 := p.Addr().As4()
		v := binary.BigEndian.Uint32(b4[:])
		host := uint32(g.r.Uint64()) & (1<<(32-p.Bits()) - 1)
		binary.BigEndian.PutUint32(b4[:], v|host)
		return netip.AddrFrom4(b4)
	}
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	hb := 128 - p.Bits()
	rl := g.r.Uint64()
	if hb < 64 {
		rl &= 1<<hb - 1
	} else if hb < 128 {
		hi |= g.r.Uint64() & (1<<(hb-64) - 1)
	}
	lo |= rl
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// target picks what to ask for: an address of another host one time in
// 16 (with the unspecified sender of a duplicate address probe, so that
// the hosts' kernels answer without adding random neighbors to their
// tables), else a random address nobody owns. The second result is true
// for the other host's address.
func (g *frameGen) target(family int) (netip.Addr, bool) {
	others := g.others
	if len(others) > 0 && g.r.IntN(16) == 0 {
		return others[g.r.IntN(len(others))], true
	}
	if family == 4 {
		return g.randomIn(g.o.net4), false
	}
	return g.randomIn(g.o.net6), false
}

// fill writes one random request into f and returns its length.
func (g *frameGen) fill(f []byte) int {
	clear(f)
	src := f[6:12]
	g.mac(src)
	if g.o.family == 4 {
		return g.fillARP(f)
	}
	return g.fillNS(f)
}

func (g *frameGen) fillARP(f []byte) int {
	tgt, other := g.target(4)
	sender := netip.IPv4Unspecified()
	if !other {
		sender = g.randomIn(g.o.net4)
	}
	return arpRequest(f, f[6:12], sender, tgt)
}

// arpRequest writes a broadcast ARP request (60 bytes, padded) from mac
// and sender for target.
func arpRequest(f []byte, mac []byte, sender, target netip.Addr) int {
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], ethARP)
	p := f[14:]
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], 1) // request
	copy(p[8:14], mac)
	s, t := sender.As4(), target.As4()
	copy(p[14:18], s[:])
	clear(p[18:24])
	copy(p[24:28], t[:])
	clear(f[42:60])
	return 60
}

func (g *frameGen) fillNS(f []byte) int {
	tgt, other := g.target(6)
	src := netip.IPv6Unspecified()
	if !other {
		src = g.randomIn(g.o.net6)
	}
	return neighborSolicitation(f, f[6:12], src, tgt)
}

// neighborSolicitation writes a Neighbor Solicitation for target, sent to
// its solicited-node group from mac and src: with a source link-layer
// address option, or without one from the unspecified address (duplicate
// address detection).
func neighborSolicitation(f []byte, mac []byte, src, target netip.Addr) int {
	t := target.As16()
	dst := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	copy(f[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], ethIPv6)
	bodyLen := 24
	if !src.IsUnspecified() {
		bodyLen += 8
	}
	h := f[14:]
	h[0], h[1], h[2], h[3] = 6<<4, 0, 0, 0
	binary.BigEndian.PutUint16(h[4:6], uint16(bodyLen))
	h[6], h[7] = 58, 255
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	b := h[40 : 40+bodyLen]
	clear(b)
	b[0] = 135
	copy(b[8:24], t[:])
	if bodyLen > 24 {
		b[24], b[25] = 1, 1 // source link-layer address, 8 bytes
		copy(b[26:32], mac)
	}
	binary.BigEndian.PutUint16(b[2:4], ^icmpv6Sum(src, dst, b))
	return 14 + 40 + bodyLen
}

// icmpv6Sum is the folded one's complement sum of the IPv6 pseudo-header
// and body.
func icmpv6Sum(src, dst netip.Addr, body []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for ; len(b) >= 2; b = b[2:] {
			sum += uint32(b[0])<<8 | uint32(b[1])
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(body)))
	l[7] = 58
	add(l[:])
	add(body)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// prober asks for one owned address every interval (an ARP request, or a
// Neighbor Solicitation, from the host's real MAC and address) and
// matches the answers to the questions in order: an answer settles the
// oldest question still within timeout.
type prober struct {
	target  netip.Addr
	fd      int
	mac     net.HardwareAddr
	ifindex int
	request []byte
	proto   uint16
	timeout time.Duration

	mu         sync.Mutex
	closed     bool
	pending    []time.Time
	sent       int
	answered   int
	missed     int
	maxLatency time.Duration
	macs       map[string]bool
}

type proberResult struct {
	sent, answered, missed int
	maxLatency             time.Duration
	macs                   []string
}

func newProber(ifi *net.Interface, self4, self6, target netip.Addr, timeout time.Duration) (*prober, error) {
	p := &prober{target: target, mac: ifi.HardwareAddr, ifindex: ifi.Index, timeout: timeout, macs: map[string]bool{}}
	var filter []bpf.Instruction
	p.request = make([]byte, 96)
	t := target.As16()
	if target.Is4() {
		if !self4.IsValid() {
			return nil, fmt.Errorf("%s has no IPv4 address to probe %s from", ifi.Name, target)
		}
		p.proto = ethARP
		p.request = p.request[:arpRequest(p.request, ifi.HardwareAddr, self4, target)]
		// ARP replies whose sender is target.
		filter = []bpf.Instruction{
			bpf.LoadAbsolute{Off: 20, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 2, SkipTrue: 3},
			bpf.LoadAbsolute{Off: 28, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(t[12:16]), SkipTrue: 1},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	} else {
		if !self6.IsValid() {
			return nil, fmt.Errorf("%s has no global IPv6 address to probe %s from", ifi.Name, target)
		}
		p.proto = ethIPv6
		p.request = p.request[:neighborSolicitation(p.request, ifi.HardwareAddr, self6, target)]
		// Neighbor Advertisements whose target is target.
		filter = []bpf.Instruction{
			bpf.LoadAbsolute{Off: 20, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 58, SkipTrue: 11},
			bpf.LoadAbsolute{Off: 54, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 136, SkipTrue: 9},
		}
		for i := range 4 {
			filter = append(filter,
				bpf.LoadAbsolute{Off: uint32(62 + 4*i), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(t[4*i : 4*i+4]), SkipTrue: uint8(7 - 2*i)})
		}
		filter = append(filter, bpf.RetConstant{Val: 0xffff}, bpf.RetConstant{Val: 0})
	}
	prog, err := bpf.Assemble(filter)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(p.proto)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	sfp := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		sfp[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(sfp)), Filter: &sfp[0]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attaching the filter: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(p.proto), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	// Frames that passed the protocol but not yet the filter may be
	// queued from before it was attached: the receive loop checks
	// everything again. A timeout lets it see close.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	p.fd = fd
	return p, nil
}

// send asks every interval until ctx ends.
func (p *prober) send(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	to := &unix.SockaddrLinklayer{Protocol: htons(p.proto), Ifindex: p.ifindex, Halen: 6}
	copy(to.Addr[:], p.request[0:6])
	for {
		p.mu.Lock()
		p.pending = append(p.pending, time.Now())
		p.sent++
		p.mu.Unlock()
		if err := unix.Sendto(p.fd, p.request, 0, to); err != nil {
			fmt.Fprintln(os.Stderr, "probe: send:", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// receive matches answers to questions until close.
func (p *prober) receive() {
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(p.fd, buf, 0)
		now := time.Now()
		if p.isClosed() {
			return
		}
		if err != nil {
			continue
		}
		if mac, ok := p.answer(buf[:n]); ok {
			p.settle(now, mac)
		}
	}
}

// answer reports whether frame answers our question, and who answered.
func (p *prober) answer(f []byte) (string, bool) {
	if len(f) < 14 || string(f[0:6]) != string(p.mac) {
		return "", false
	}
	t := p.target.As16()
	if p.target.Is4() {
		if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != ethARP || binary.BigEndian.Uint16(f[20:22]) != 2 ||
			string(f[28:32]) != string(t[12:16]) || string(f[32:38]) != string(p.mac) {
			return "", false
		}
		return net.HardwareAddr(f[22:28]).String(), true
	}
	if len(f) < 78 || binary.BigEndian.Uint16(f[12:14]) != ethIPv6 || f[20] != 58 || f[54] != 136 || string(f[62:78]) != string(t[:]) {
		return "", false
	}
	return net.HardwareAddr(f[6:12]).String(), true
}

// settle counts an answer received at now: questions older than the
// timeout are missed, and the oldest one left is answered.
func (p *prober) settle(now time.Time, mac string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.macs[mac] = true
	p.expireLocked(now)
	if len(p.pending) == 0 {
		return // a late or duplicate answer
	}
	if d := now.Sub(p.pending[0]); d > p.maxLatency {
		p.maxLatency = d
	}
	p.pending = p.pending[1:]
	p.answered++
}

func (p *prober) expireLocked(now time.Time) {
	for len(p.pending) > 0 && now.Sub(p.pending[0]) > p.timeout {
		p.pending = p.pending[1:]
		p.missed++
	}
}

func (p *prober) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close stops the receiver, within its read timeout.
func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

// result counts every question still pending as missed.
func (p *prober) result() proberResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.missed += len(p.pending)
	p.pending = nil
	r := proberResult{sent: p.sent, answered: p.answered, missed: p.missed, maxLatency: p.maxLatency}
	for m := range p.macs {
		r.macs = append(r.macs, m)
	}
	return r
}
