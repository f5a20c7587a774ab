package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
)

// Family is the address family of a frontend.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns nft's name for the family's header ("ip", "ip6").
func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Ruleset is a model of the whole table: what Plan decides and Sync
// writes. Its String method prints it in nft's syntax.
type Ruleset struct {
	// Counters are the named counters, one per frontend, in frontend
	// order.
	Counters []Counter
	// Maps are the verdict maps that dispatch packets to frontends.
	Maps []Map
	// Chains are the base chains, then each frontend's chains in frontend
	// order.
	Chains []Chain
}

// Counter is a named counter of the packets a frontend dropped (a source
// outside SourceRanges) or rejected (no backends).
type Counter struct {
	Name    string
	Service string
}

// Map is a verdict map keyed by destination address, transport protocol
// and destination port (ip daddr . meta l4proto . th dport).
type Map struct {
	Name     string
	Family   Family
	Elements []MapElement
}

// MapElement sends the packets of one frontend to a chain.
type MapElement struct {
	VIP      netip.Addr
	Protocol Protocol
	Port     uint16
	Chain    string // jump target
	Service  string // element comment
}

// Chain is a chain and its rules in order. Hook is nil for a regular
// chain, reached only by jump or goto.
type Chain struct {
	Name  string
	Hook  *Hook
	Rules []Rule
}

// Hook makes a chain a base chain.
type Hook struct {
	Type     string // "filter" or "nat"
	Hook     string // "prerouting", "output" or "postrouting"
	Priority int32
}

// Rule is one rule of a Chain: one of Dispatch, AllowSource, Refuse,
// Spread, DNAT, Masquerade or TrackConnections (or nodeport.go's).
type Rule interface {
	// String returns the rule in nft's syntax.
	String() string
	rule()
}

// Dispatch looks packets of one family up in a verdict map by
// destination, protocol and port.
type Dispatch struct {
	Family Family
	Map    string
}

// AllowSource returns (accepts, as far as this table is concerned)
// packets from Prefix, before Refuse drops the rest.
type AllowSource struct {
	Prefix netip.Prefix
}

// Refuse counts a packet in Counter, then drops it or, with Reject,
// answers it with ICMP port unreachable so that clients fail at once.
type Refuse struct {
	Counter string
	Reject  bool
}

// Spread chooses a backend chain by a Jenkins hash of the flow's source
// address and port, modulo len(Chains).
//
// The choice is a function of the flow only (fixed seed, backends sorted
// by address and port), never numgen random: every node computes the same
// backend for the same flow. When another node takes the VIP over, the
// first packet it sees of an established connection is a mid-stream one,
// which conntrack accepts as a new connection (nf_conntrack_tcp_loose) and
// sends through our nat chains, where it is DNATed to the backend the old
// node chose. That is the start of connections that survive a failover.
type Spread struct {
	Family Family
	Seed   uint32
	Chains []string // goto targets, by hash value
}

// DNAT rewrites the destination to To; with Mark it also sets
// MasqueradeMark on the connection, so that postrouting masquerades it.
type DNAT struct {
	To   netip.AddrPort
	Mark bool
}

// Masquerade masquerades the connections that carry Mark.
type Masquerade struct {
	Mark uint32
}

// TrackConnections matches every packet a nat chain sees (ct state
// new,related) and does nothing else. Nat chains run only for tracked
// packets, and the kernel tracks connections in a namespace only while a
// ct or nat expression needs it: a table whose frontends all refuse (no
// backend anywhere, so no DNAT) would have neither, and its refusals
// would never run. This rule is that expression.
type TrackConnections struct{}

func (Dispatch) rule()         {}
func (AllowSource) rule()      {}
func (Refuse) rule()           {}
func (Spread) rule()           {}
func (DNAT) rule()             {}
func (Masquerade) rule()       {}
func (TrackConnections) rule() {}

// Names of the base chains and maps.
const (
	chainFilterPrerouting = "filter_prerouting"
	chainNATPrerouting    = "nat_prerouting"
	chainNATOutput        = "nat_output"
	chainNATPostrouting   = "nat_postrouting"
	mapFrontends4         = "frontends4"
	mapFrontends6         = "frontends6"
	mapSourceFilter4      = "source_filter4"
	mapSourceFilter6      = "source_filter6"
)

// Plan validates cfg and turns it into the Ruleset of the table. The
// result depends on cfg's contents only, not on the order of its
// frontends, backends or source ranges. An empty Config gives an empty
// Ruleset: a table with nothing in it, which hooks no packet.
func Plan(cfg Config) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fronts := slices.Clone(cfg.Frontends)
	slices.SortFunc(fronts, func(a, b Frontend) int { return a.key().compare(b.key()) })

	rs := &Ruleset{}
	nat := map[Family]*Map{IPv4: {Name: mapFrontends4, Family: IPv4}, IPv6: {Name: mapFrontends6, Family: IPv6}}
	nodePorts := map[Family]*Map{IPv4: {Name: mapNodePorts4, Family: IPv4}, IPv6: {Name: mapNodePorts6, Family: IPv6}}
	var replies []Rule
	filter := map[Family]*Map{IPv4: {Name: mapSourceFilter4, Family: IPv4}, IPv6: {Name: mapSourceFilter6, Family: IPv6}}
	masquerade := false
	// dnat: some frontend has a backend, so the nat chains hold a nat
	// expression (and connection tracking) already.
	dnat := false
	var perFrontend []Chain

	for i := range fronts {
		f := &fronts[i]
		fam := familyOf(f.VIP)
		id := f.key().id()
		counter := "drop_" + id
		rs.Counters = append(rs.Counters, Counter{Name: counter, Service: f.Service})
		backends, ranges := f.normalized()
		element := func(chain string) MapElement {
			return MapElement{VIP: f.VIP, Protocol: f.Protocol, Port: f.Port, Chain: chain, Service: f.Service}
		}

		var src *Chain
		if len(ranges) > 0 {
			src = &Chain{Name: "src_" + id}
			for _, p := range ranges {
				src.Rules = append(src.Rules, AllowSource{Prefix: p})
			}
			src.Rules = append(src.Rules, Refuse{Counter: counter})
			perFrontend = append(perFrontend, *src)
		}

		if f.NodePort != 0 {
			// Handed to kube-proxy (nodeport.go). The source ranges
			// are checked in the raw chain, while the destination is
			// still the VIP.
			np := Chain{Name: "np_" + id}
			if src != nil {
				np.Rules = append(np.Rules, Jump{Chain: src.Name})
			}
			to := netip.AddrPortFrom(f.NodeAddr, f.NodePort)
			np.Rules = append(np.Rules, ToNodePort{Protocol: f.Protocol, To: to, Mark: NodePortMark})
			nodePorts[fam].Elements = append(nodePorts[fam].Elements, element(np.Name))
			replies = append(replies, FromNodePort{Protocol: f.Protocol, From: to, To: netip.AddrPortFrom(f.VIP, f.Port), Mark: NodePortMark})
			perFrontend = append(perFrontend, np)
			continue
		}
		if src != nil {
			filter[fam].Elements = append(filter[fam].Elements, element(src.Name))
		}

		fe := Chain{Name: "fe_" + id}
		nat[fam].Elements = append(nat[fam].Elements, element(fe.Name))
		var targets []Chain
		for j, b := range backends {
			mark := !b.Local && !f.PreserveClient
			masquerade = masquerade || mark
			targets = append(targets, Chain{
				Name:  fmt.Sprintf("%s_b%d", fe.Name, j),
				Rules: []Rule{DNAT{To: netip.AddrPortFrom(b.Addr, b.Port), Mark: mark}},
			})
		}
		dnat = dnat || len(targets) > 0
		switch len(targets) {
		case 0:
			// Rejected in the nat chains rather than the filter one, so
			// that the output hook (clients on this node) sees it too.
			// Only a connection's first packet passes nat chains, and
			// it is the one to refuse.
			fe.Rules = []Rule{Refuse{Counter: counter, Reject: true}}
			targets = nil
		case 1:
			// No choice to make: DNAT in the frontend chain itself.
			fe.Rules = targets[0].Rules
			targets = nil
		default:
			spread := Spread{Family: fam, Seed: HashSeed}
			for _, t := range targets {
				spread.Chains = append(spread.Chains, t.Name)
			}
			fe.Rules = []Rule{spread}
		}
		perFrontend = append(perFrontend, fe)
		perFrontend = append(perFrontend, targets...)
	}

	used := func(maps map[Family]*Map) []Rule {
		var rules []Rule
		for _, fam := range []Family{IPv4, IPv6} {
			if m := maps[fam]; len(m.Elements) > 0 {
				rs.Maps = append(rs.Maps, *m)
				rules = append(rules, Dispatch{Family: fam, Map: m.Name})
			}
		}
		return rules
	}
	if rules := used(nodePorts); len(rules) > 0 {
		rs.Chains = append(rs.Chains,
			Chain{Name: chainRawPrerouting, Hook: &Hook{Type: "filter", Hook: "prerouting", Priority: priorityRaw}, Rules: rules},
			Chain{Name: chainMangle, Hook: &Hook{Type: "filter", Hook: "prerouting", Priority: priorityMangle},
				Rules: []Rule{MarkConnection{Mark: NodePortMark}}},
			Chain{Name: chainReplies, Hook: &Hook{Type: "filter", Hook: "postrouting", Priority: priorityReplySNAT}, Rules: replies})
	}
	if rules := used(filter); len(rules) > 0 {
		rs.Chains = append(rs.Chains, Chain{Name: chainFilterPrerouting,
			Hook: &Hook{Type: "filter", Hook: "prerouting", Priority: priorityFilterPrerouting}, Rules: rules})
	}
	if rules := used(nat); len(rules) > 0 {
		if !dnat {
			rules = append([]Rule{TrackConnections{}}, rules...)
		}
		rs.Chains = append(rs.Chains,
			Chain{Name: chainNATPrerouting, Hook: &Hook{Type: "nat", Hook: "prerouting", Priority: priorityDNAT}, Rules: rules},
			Chain{Name: chainNATOutput, Hook: &Hook{Type: "nat", Hook: "output", Priority: priorityDNAT}, Rules: rules})
	}
	if masquerade {
		rs.Chains = append(rs.Chains, Chain{Name: chainNATPostrouting,
			Hook:  &Hook{Type: "nat", Hook: "postrouting", Priority: prioritySNAT},
			Rules: []Rule{Masquerade{Mark: MasqueradeMark}}})
	}
	rs.Chains = append(rs.Chains, perFrontend...)
	return rs, nil
}

// services returns the counters of each Service, for Dropped.
func (rs *Ruleset) services() map[string][]string {
	m := make(map[string][]string)
	for _, c := range rs.Counters {
		m[c.Service] = append(m[c.Service], c.Name)
	}
	return m
}
