package heartbeat

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// prober asks the LAN for a silent peer's address (ARP for IPv4, a
// Neighbor Solicitation for IPv6) and reports the peer's answers. Its
// sockets are opened on the first probe of an interface and closed after
// probeIdle without one, so a quiet cluster pays nothing for them.
//
// Nothing waits on its sockets: the answers queue in the kernel with the
// time each arrived, and Run reads them (drain) every time it wakes, before
// it ticks the detector. It is Run's alone, and not safe for concurrent
// use.
type prober struct {
	log *slog.Logger
	// ifaces is keyed by interface index, not name: an interface deleted
	// and made again under its name (a bond or VLAN rebuilt, a veth
	// recreated) is another interface, and a packet socket bound to the
	// old one would send nothing.
	ifaces map[int]*probeIface
	// buf and oob are drain's buffers: a whole Ethernet frame, and room
	// for the arrival time.
	buf, oob []byte
}

// probeIdle is how long an interface's probe sockets stay open after its
// last probe.
const probeIdle = 2 * time.Second

type probeIface struct {
	ifi  *net.Interface
	arp  *arpSocket
	ndp  *ndpSocket
	last time.Time
	// want maps each probed address to its node.
	want map[netip.Addr]string
}

func newProber(log *slog.Logger) *prober {
	return &prober{log: log, ifaces: map[int]*probeIface{},
		buf: make([]byte, 1600), oob: make([]byte, unix.CmsgSpace(16))}
}

// probe sends one probe for node's address, and reports whether it went
// out.
func (p *prober) probe(node string, addr netip.Addr, now time.Time) bool {
	addr = addr.Unmap()
	ifi, local, err := onLinkInterface(addr)
	if err != nil {
		p.log.Debug("cannot probe a silent peer on the LAN", "peer", node, "addr", addr, "err", err)
		return false
	}
	pi := p.ifaces[ifi.Index]
	if pi == nil {
		pi = &probeIface{ifi: ifi, want: map[netip.Addr]string{}}
		p.ifaces[ifi.Index] = pi
	}
	pi.last = now
	pi.want[addr] = node
	if addr.Is4() {
		if pi.arp == nil {
			if pi.arp, err = listenARP(ifi); err != nil {
				p.log.Debug("opening an ARP socket to probe a silent peer", "iface", ifi.Name, "err", err)
				return false
			}
		}
		if err := pi.arp.request(addr); err != nil {
			p.log.Debug("probing a silent peer", "peer", node, "addr", addr, "err", err)
			// Open a new socket for the next probe: this one may never
			// send again (its interface gone, say).
			_ = pi.arp.conn.Close()
			pi.arp = nil
			return false
		}
		return true
	}
	if pi.ndp == nil {
		// From this node's address on the peer's subnet: always there
		// (a link-local address may still be tentative), and the peer
		// answers it on the link.
		if pi.ndp, err = listenNDP(ifi, local); err != nil {
			p.log.Debug("opening an NDP socket to probe a silent peer", "iface", ifi.Name, "err", err)
			return false
		}
	}
	if err := pi.ndp.solicit(addr); err != nil {
		p.log.Debug("probing a silent peer", "peer", node, "addr", addr, "err", err)
		_ = pi.ndp.conn.Close()
		pi.ndp = nil
		return false
	}
	return true
}

// drain reads the answers queued on every probe socket and calls answered
// with each probed peer that answered and when its answer arrived.
func (p *prober) drain(now time.Time, answered func(node string, at time.Time)) {
	for _, pi := range p.ifaces {
		saw := func(addr netip.Addr, at time.Time) {
			if node, ok := pi.want[addr.Unmap()]; ok {
				answered(node, at)
			}
		}
		if pi.arp != nil {
			p.report(pi, "ARP", pi.arp.drain(p.buf, p.oob, now, saw))
		}
		if pi.ndp != nil {
			p.report(pi, "NDP", pi.ndp.drain(p.buf, p.oob, now, saw))
		}
	}
}

// report logs a failed read at debug level: a link that is down fails
// every read, and the detector sees the silence anyway.
func (p *prober) report(pi *probeIface, what string, err error) {
	if err != nil {
		p.log.Debug("reading probe answers", "iface", pi.ifi.Name, "proto", what, "err", err)
	}
}

// closeIdle closes the sockets of the interfaces not probed for probeIdle.
func (p *prober) closeIdle(now time.Time) {
	for index, pi := range p.ifaces {
		if now.Sub(pi.last) >= probeIdle {
			pi.close()
			delete(p.ifaces, index)
		}
	}
}

func (p *prober) close() {
	for index, pi := range p.ifaces {
		pi.close()
		delete(p.ifaces, index)
	}
}

func (pi *probeIface) close() {
	if pi.arp != nil {
		_ = pi.arp.conn.Close()
	}
	if pi.ndp != nil {
		_ = pi.ndp.conn.Close()
	}
}

// arpSocket sends ARP requests and reads the replies from a packet socket.
type arpSocket struct {
	conn   *packet.Conn
	raw    syscall.RawConn
	client *arp.Client
}

// arpReplies is a socket filter that keeps only ARP replies: the rest of
// the LAN's ARP (requests, this node's own frames) is dropped in the
// kernel, and cannot crowd the peer's answer out of the queue.
var arpReplies = func() []bpf.RawInstruction {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_ARP, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 20, Size: 2}, // ARP operation
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.OperationReply), SkipTrue: 1},
		bpf.RetConstant{Val: 1600},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		panic(err) // a constant program
	}
	return prog
}()

func listenARP(ifi *net.Interface) (*arpSocket, error) {
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, &packet.Config{Filter: arpReplies})
	if err != nil {
		return nil, err
	}
	s := &arpSocket{conn: conn}
	if s.raw, err = conn.SyscallConn(); err == nil {
		err = control(s.raw, timestamped)
	}
	if err == nil {
		s.client, err = arp.New(ifi, conn)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *arpSocket) request(addr netip.Addr) error { return s.client.Request(addr) }

// drain reads the queued frames and calls saw with the sender of each ARP
// reply.
func (s *arpSocket) drain(buf, oob []byte, now time.Time, saw func(netip.Addr, time.Time)) error {
	return control(s.raw, func(fd int) error {
		return drainFD(fd, buf, oob, now, func(b []byte, at time.Time) {
			var f ethernet.Frame
			var pkt arp.Packet
			if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeARP || pkt.UnmarshalBinary(f.Payload) != nil {
				return
			}
			if pkt.Operation == arp.OperationReply {
				saw(pkt.SenderIP, at)
			}
		})
	})
}

// ndpSocket sends Neighbor Solicitations and reads the advertisements from
// an ICMPv6 socket.
type ndpSocket struct {
	conn  *net.IPConn
	raw   syscall.RawConn
	pc    *ipv6.PacketConn
	ifi   *net.Interface
	local netip.Addr
}

func listenNDP(ifi *net.Interface, local netip.Addr) (*ndpSocket, error) {
	if local.IsLinkLocalUnicast() {
		// The index, not the name: Go caches names' indexes for up to a
		// minute, and an interface made again under its name has a new
		// one.
		local = local.WithZone(strconv.Itoa(ifi.Index))
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", local.String())
	if err != nil {
		return nil, err
	}
	conn := c.(*net.IPConn)
	s := &ndpSocket{conn: conn, pc: ipv6.NewPacketConn(conn), ifi: ifi, local: local}
	if err := s.setup(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *ndpSocket) setup() error {
	var err error
	if s.raw, err = s.conn.SyscallConn(); err != nil {
		return err
	}
	if err := control(s.raw, timestamped); err != nil {
		return err
	}
	// RFC 4861: NDP's messages travel with a hop limit of 255.
	if err := s.pc.SetHopLimit(ndp.HopLimit); err != nil {
		return err
	}
	if err := s.pc.SetMulticastHopLimit(ndp.HopLimit); err != nil {
		return err
	}
	// Only advertisements queue: the rest of the LAN's ICMPv6 is dropped
	// by the kernel, not read and thrown away here.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	return s.pc.SetICMPFilter(&f)
}

func (s *ndpSocket) solicit(addr netip.Addr) error {
	snm, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	b, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: addr, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: s.ifi.HardwareAddr}}})
	if err != nil {
		return err
	}
	// The interface is named by its index in the control message, not by
	// a zone in the address: Go resolves a zone's name through a cache
	// that keeps an interface made again under its name at its old index
	// for up to a minute, and the kernel then refuses the send.
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: s.local.WithZone("").AsSlice(), IfIndex: s.ifi.Index}
	_, err = s.pc.WriteTo(b, cm, &net.IPAddr{IP: snm.AsSlice()})
	return err
}

// drain reads the queued advertisements and calls saw with the target of
// each.
func (s *ndpSocket) drain(buf, oob []byte, now time.Time, saw func(netip.Addr, time.Time)) error {
	return control(s.raw, func(fd int) error {
		return drainFD(fd, buf, oob, now, func(b []byte, at time.Time) {
			if m, err := ndp.ParseMessage(b); err == nil {
				if na, ok := m.(*ndp.NeighborAdvertisement); ok {
					saw(na.TargetAddress, at)
				}
			}
		})
	})
}

// control runs fn on the socket's file descriptor.
func control(raw syscall.RawConn, fn func(fd int) error) error {
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// onLinkInterface returns the up interface with an address on the subnet
// of addr (the LAN on which the peer's kernel answers for it), and that
// address.
//
// A link-local address names no LAN by itself (every interface has
// fe80::/64), so such a peer is not probed: probing the wrong link would
// find a live peer silent. Kubernetes node addresses are never link-local.
func onLinkInterface(addr netip.Addr) (*net.Interface, netip.Addr, error) {
	if addr.IsLinkLocalUnicast() {
		return nil, netip.Addr{}, errors.New("a link-local address names no interface to probe it on")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, netip.Addr{}, err
	}
	for i := range ifs {
		ifi := &ifs[i]
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) == 0 {
			continue
		}
		as, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil && p.Contains(addr) {
					return ifi, p.Addr(), nil
				}
			}
		}
	}
	return nil, netip.Addr{}, errors.New("no interface on its subnet")
}
