package dataplane

import (
	"fmt"
	"strings"
)

// Render prints the table in nft's syntax (close to `nft list table`),
// for tests, logs and humans. It is deterministic: equal Rulesets render
// equal text.
func (rs *Ruleset) Render(table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", table)
	for _, c := range rs.Counters {
		fmt.Fprintf(&b, "\tcounter %s { # %s\n\t}\n", c.Name, c.Service)
	}
	for _, m := range rs.Maps {
		addr := "ipv4_addr"
		if m.Family == IPv6 {
			addr = "ipv6_addr"
		}
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s . inet_proto . inet_service : verdict\n\t\telements = {\n", m.Name, addr)
		for _, e := range m.Elements {
			fmt.Fprintf(&b, "\t\t\t%s . %s . %d comment %q : jump %s,\n", e.VIP, e.Protocol, e.Port, e.Service, e.Chain)
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	for _, c := range rs.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if h := c.Hook; h != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", h.Type, h.Hook, priorityName(h.Priority))
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// String renders the table under the default name.
func (rs *Ruleset) String() string { return rs.Render(DefaultTable) }

// priorityName writes a priority relative to dstnat or srcnat, as nft
// does.
func priorityName(p int32) string {
	switch {
	case p == priorityRaw:
		return "raw"
	case p == priorityMangle:
		return "mangle"
	case p < 0:
		return fmt.Sprintf("dstnat - %d", -100-p)
	case p > 100:
		return fmt.Sprintf("srcnat + %d", p-100)
	default:
		return fmt.Sprintf("srcnat - %d", 100-p)
	}
}

func (r Dispatch) String() string {
	return fmt.Sprintf("meta nfproto ipv%d %s daddr . meta l4proto . th dport vmap @%s", r.Family, r.Family, r.Map)
}

func (r AllowSource) String() string {
	return fmt.Sprintf("%s saddr %s return", familyOf(r.Prefix.Addr()), r.Prefix)
}

func (r Refuse) String() string {
	if r.Reject {
		return fmt.Sprintf("counter name %q reject with icmpx port-unreachable", r.Counter)
	}
	return fmt.Sprintf("counter name %q drop", r.Counter)
}

func (TrackConnections) String() string { return "ct state new,related" }

func (r Spread) String() string {
	targets := make([]string, len(r.Chains))
	for i, c := range r.Chains {
		targets[i] = fmt.Sprintf("%d : goto %s", i, c)
	}
	return fmt.Sprintf("jhash %s saddr . th sport mod %d seed %#x vmap { %s }",
		r.Family, len(r.Chains), r.Seed, strings.Join(targets, ", "))
}

func (r DNAT) String() string {
	s := fmt.Sprintf("dnat %s to %s", familyOf(r.To.Addr()), r.To)
	if r.Mark {
		s = fmt.Sprintf("ct mark set ct mark | %#08x ", MasqueradeMark) + s
	}
	return s
}

func (r Masquerade) String() string {
	return fmt.Sprintf("ct mark & %#08x != 0 masquerade", r.Mark)
}
