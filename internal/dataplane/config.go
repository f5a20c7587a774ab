package dataplane

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Protocol is a transport protocol. Its values are the IP protocol
// numbers, which is what nftables matches with meta l4proto.
type Protocol uint8

// Supported protocols.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns the protocol's name as nft writes it ("tcp").
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

func (p Protocol) valid() bool { return p == TCP || p == UDP || p == SCTP }

// Backend is one ready endpoint of a Service.
type Backend struct {
	Addr netip.Addr
	Port uint16
	// Local says that the endpoint runs on this node. Connections to a
	// local endpoint are never masqueraded: its replies come back through
	// this node anyway, and the endpoint sees the client's address.
	Local bool
}

// Frontend is one Service IP, protocol and port that this node carries.
type Frontend struct {
	// Service is "namespace/name". It names the frontend in errors, map
	// comments and Dropped.
	Service  string
	VIP      netip.Addr
	Protocol Protocol
	Port     uint16
	// SourceRanges, if not empty, are the only sources allowed
	// (loadBalancerSourceRanges); packets from other sources are dropped
	// and counted.
	SourceRanges []netip.Prefix
	// Backends are the ready endpoints, in any order. With none, packets
	// to the frontend are rejected and counted rather than left to reach
	// the host.
	Backends []Backend
	// PreserveClient (externalTrafficPolicy: Local) means never
	// masquerade: backends see the client's address. The caller is
	// expected to pass local backends only; a remote backend would answer
	// the client directly, from an address the client never called.
	PreserveClient bool
	// NodePort, when not 0, hands the frontend to kube-proxy instead
	// (nodeport forwarding): packets are rewritten to NodeAddr:NodePort
	// before connection tracking, and their replies back to VIP:Port (see
	// nodeport.go). Backends and PreserveClient must then be empty:
	// kube-proxy chooses the endpoint and applies the traffic policy.
	NodePort uint16
	// NodeAddr is this node's address of the VIP's family, where
	// kube-proxy serves NodePort.
	NodeAddr netip.Addr
}

// Config is everything the table should forward.
type Config struct {
	Frontends []Frontend
}

// key identifies a frontend: two frontends may not share one.
type key struct {
	vip   netip.Addr
	proto Protocol
	port  uint16
}

func (f *Frontend) key() key { return key{f.VIP, f.Protocol, f.Port} }

// id is the frontend's part of chain and counter names,
// e.g. "tcp_198.18.200.10_80".
func (k key) id() string { return fmt.Sprintf("%s_%s_%d", k.proto, k.vip, k.port) }

func (k key) compare(o key) int {
	return cmp.Or(k.vip.Compare(o.vip), cmp.Compare(k.proto, o.proto), cmp.Compare(k.port, o.port))
}

// Validate reports every frontend that cannot be programmed, each error
// naming the Service and the field at fault.
func (c Config) Validate() error {
	var errs []error
	seen := make(map[key]string, len(c.Frontends))
	for i := range c.Frontends {
		f := &c.Frontends[i]
		if err := f.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if other, ok := seen[f.key()]; ok {
			errs = append(errs, fmt.Errorf("dataplane: service %q: frontend %s %s:%d is also claimed by service %q; a VIP, protocol and port can forward to one Service only",
				f.Service, f.Protocol, f.VIP, f.Port, other))
			continue
		}
		seen[f.key()] = f.Service
	}
	return errors.Join(errs...)
}

func (f *Frontend) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("dataplane: service %q: %s", f.Service, fmt.Sprintf(format, args...))
	}
	switch {
	case f.Service == "":
		return fmt.Errorf("dataplane: frontend %s %s:%d: Service is empty; set it to \"namespace/name\"", f.Protocol, f.VIP, f.Port)
	case !f.VIP.IsValid() || f.VIP.IsUnspecified():
		return bad("VIP %v is not a usable address", f.VIP)
	case f.VIP.Is4In6():
		return bad("VIP %s is an IPv4-mapped IPv6 address; give the IPv4 form", f.VIP)
	case f.VIP.Zone() != "":
		return bad("VIP %s has a zone; Service IPs have none", f.VIP)
	case !f.Protocol.valid():
		return bad("unsupported Protocol %s; want tcp, udp or sctp", f.Protocol)
	case f.Port == 0:
		return bad("Port is 0 for %s %s", f.Protocol, f.VIP)
	}
	if f.NodePort != 0 {
		switch {
		case !f.NodeAddr.IsValid() || f.NodeAddr.Is4() != f.VIP.Is4() || f.NodeAddr.Is4In6():
			return bad("NodeAddr %v is not this node's address of the family of VIP %s", f.NodeAddr, f.VIP)
		case len(f.Backends) > 0 || f.PreserveClient:
			return bad("a NodePort frontend has no Backends or PreserveClient: kube-proxy chooses the endpoint")
		case f.Protocol == SCTP:
			return bad("SCTP cannot be handed to a NodePort (its checksum is not rewritten); use direct forwarding")
		}
	}
	for _, p := range f.SourceRanges {
		if !p.IsValid() {
			return bad("SourceRanges entry %v is not a prefix", p)
		}
		if p.Addr().Is4() != f.VIP.Is4() || p.Addr().Is4In6() {
			return bad("SourceRanges entry %s is not of the address family of VIP %s", p, f.VIP)
		}
	}
	for _, b := range f.Backends {
		switch {
		case !b.Addr.IsValid() || b.Addr.IsUnspecified():
			return bad("backend address %v is not usable", b.Addr)
		case b.Addr.Is4() != f.VIP.Is4() || b.Addr.Is4In6():
			return bad("backend %s is not of the address family of VIP %s; give each family its own frontend", b.Addr, f.VIP)
		case b.Port == 0:
			return bad("backend %s has Port 0", b.Addr)
		}
	}
	return nil
}

// normalized returns the frontend's backends sorted by address and port
// with duplicates merged (an endpoint can sit in two EndpointSlices while
// a slice is being rewritten; Local wins), and its source ranges masked,
// sorted and deduplicated.
func (f *Frontend) normalized() (backends []Backend, ranges []netip.Prefix) {
	backends = slices.Clone(f.Backends)
	// Among equal endpoints a local one sorts first, so that Compact,
	// which keeps the first of a run, keeps it.
	slices.SortFunc(backends, func(a, b Backend) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), -compareBool(a.Local, b.Local))
	})
	backends = slices.CompactFunc(backends, func(a, b Backend) bool {
		return a.Addr == b.Addr && a.Port == b.Port
	})
	ranges = make([]netip.Prefix, 0, len(f.SourceRanges))
	for _, p := range f.SourceRanges {
		ranges = append(ranges, p.Masked())
	}
	slices.SortFunc(ranges, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return backends, slices.Compact(ranges)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
