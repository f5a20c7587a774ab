package heartbeat

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// prober asks the LAN for a silent peer's address (ARP for IPv4, a
// Neighbor Solicitation for IPv6) and reports the peer's answers. Its
// sockets are opened on the first probe of an interface and closed after
// probeIdle without one, so a quiet cluster pays nothing for them.
type prober struct {
	log      *slog.Logger
	answered func(node string)

	mu     sync.Mutex
	closed bool
	ifaces map[string]*probeIface // by interface name
}

// probeIdle is how long an interface's probe socket stays open after its
// last probe.
const probeIdle = 2 * time.Second

type probeIface struct {
	// closed is set, under the prober's lock, when the sockets close: the
	// readers stop on it whatever error their sockets return.
	closed bool
	arp    *arp.Client
	ndp    *ndp.Conn
	last   time.Time
	// want maps each probed address to its node.
	want map[netip.Addr]string
}

func newProber(log *slog.Logger, answered func(string)) *prober {
	return &prober{log: log, answered: answered, ifaces: map[string]*probeIface{}}
}

// probe sends one probe for node's address.
func (p *prober) probe(node string, addr netip.Addr) {
	addr = addr.Unmap()
	ifi, local, err := onLinkInterface(addr)
	if err != nil {
		p.log.Debug("cannot probe a silent peer on the LAN", "peer", node, "addr", addr, "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	pi := p.ifaces[ifi.Name]
	if pi == nil {
		pi = &probeIface{want: map[netip.Addr]string{}}
		p.ifaces[ifi.Name] = pi
		go p.expire(ifi.Name, pi)
	}
	pi.last = time.Now()
	pi.want[addr] = node
	if addr.Is4() {
		if pi.arp == nil {
			c, err := arp.Dial(ifi)
			if err != nil {
				p.log.Debug("opening an ARP socket to probe a silent peer", "iface", ifi.Name, "err", err)
				return
			}
			pi.arp = c
			go p.readARP(pi, c)
		}
		_ = pi.arp.Request(addr)
		return
	}
	if pi.ndp == nil {
		// From this node's address on the peer's subnet: always there
		// (a link-local address may still be tentative), and the peer
		// answers it on the link.
		c, _, err := ndp.Listen(ifi, ndp.Addr(local.String()))
		if err != nil {
			p.log.Debug("opening an NDP socket to probe a silent peer", "iface", ifi.Name, "err", err)
			return
		}
		pi.ndp = c
		go p.readNDP(pi, c)
	}
	snm, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: addr, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}}}
	_ = pi.ndp.WriteTo(ns, nil, snm)
}

func (p *prober) readARP(pi *probeIface, c *arp.Client) {
	for {
		pkt, _, err := c.Read()
		if err != nil {
			if p.stopped(pi, err) {
				return
			}
			continue
		}
		if pkt.Operation == arp.OperationReply {
			p.saw(pi, pkt.SenderIP)
		}
	}
}

func (p *prober) readNDP(pi *probeIface, c *ndp.Conn) {
	for {
		m, _, _, err := c.ReadFrom()
		if err != nil {
			if p.stopped(pi, err) {
				return
			}
			continue
		}
		if na, ok := m.(*ndp.NeighborAdvertisement); ok {
			p.saw(pi, na.TargetAddress)
		}
	}
}

// stopped reports whether a reader whose socket returned err must stop:
// its sockets were closed. Other errors (a link that is down fails every
// read at once) are waited out, so that a reader never spins.
func (p *prober) stopped(pi *probeIface, err error) bool {
	p.mu.Lock()
	closed := pi.closed
	p.mu.Unlock()
	if closed || isClosed(err) {
		return true
	}
	time.Sleep(errorBackoff)
	return false
}

// errorBackoff is how long a reader waits after a read error.
const errorBackoff = 20 * time.Millisecond

func (p *prober) saw(pi *probeIface, addr netip.Addr) {
	p.mu.Lock()
	node, ok := pi.want[addr.Unmap()]
	p.mu.Unlock()
	if ok {
		p.answered(node)
	}
}

// expire closes an interface's sockets once it has not been probed for
// probeIdle.
func (p *prober) expire(name string, pi *probeIface) {
	for {
		time.Sleep(probeIdle / 2)
		p.mu.Lock()
		if p.closed || time.Since(pi.last) >= probeIdle {
			pi.closeLocked()
			if p.ifaces[name] == pi {
				delete(p.ifaces, name)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

func (pi *probeIface) closeLocked() {
	pi.closed = true
	if pi.arp != nil {
		_ = pi.arp.Close()
	}
	if pi.ndp != nil {
		_ = pi.ndp.Close()
	}
}

func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for name, pi := range p.ifaces {
		pi.closeLocked()
		delete(p.ifaces, name)
	}
}

// onLinkInterface returns the up interface with an address on the subnet
// of addr (the LAN on which the peer's kernel answers for it), and that
// address.
func onLinkInterface(addr netip.Addr) (*net.Interface, netip.Addr, error) {
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

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
