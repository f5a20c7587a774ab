package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// fingerprint summarises a table cheaply enough to read back on every
// Check: "table" -> 1, "chain NAME" -> its rule count, "map NAME" -> its
// element count, "counter NAME" -> 1. It catches what people and tools do
// to a table (flush it, delete a rule, a chain, an element, the table)
// without decoding every rule.
type fingerprint map[string]int

// planned is the fingerprint rs has once written.
func planned(rs *Ruleset) fingerprint {
	fp := fingerprint{"table": 1}
	for _, c := range rs.Chains {
		fp["chain "+c.Name] = len(c.Rules)
	}
	for _, m := range rs.Maps {
		fp["map "+m.Name] = len(m.Elements)
	}
	for _, c := range rs.Counters {
		fp["counter "+c.Name] = 1
	}
	return fp
}

// observe reads the kernel table's fingerprint: a handful of dumps,
// however many frontends there are.
func (d *Dataplane) observe() (fingerprint, error) {
	fp := fingerprint{}
	tables, err := d.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == d.table }) {
		return fp, nil
	}
	fp["table"] = 1
	t := &nftables.Table{Name: d.table, Family: nftables.TableFamilyINet}

	chains, err := d.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	for _, c := range chains {
		if c.Table.Name == d.table {
			fp["chain "+c.Name] = 0
		}
	}
	counts, err := d.ruleCounts()
	if err != nil {
		return nil, err
	}
	for chain, n := range counts {
		fp["chain "+chain] = n
	}

	sets, err := d.conn.GetSets(t)
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		if s.Anonymous || strings.HasPrefix(s.Name, "__") {
			continue // a Spread's map, counted with its rule
		}
		elems, err := d.conn.GetSetElements(s)
		if err != nil {
			return nil, err
		}
		fp["map "+s.Name] = len(elems)
	}

	counters, err := d.readCounters()
	if err != nil {
		return nil, err
	}
	for name := range counters {
		fp["counter "+name] = 1
	}
	return fp, nil
}

// ruleCounts counts the rules of each chain of the table in one dump.
// google/nftables lists the rules of one chain per request; a dump
// filtered by table only (which the kernel supports) needs one request for
// the whole table instead of one per chain.
func (d *Dataplane) ruleCounts() (map[string]int, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: d.netns})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(d.table + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	// nfgenmsg: family, version, resource id.
	header := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append(header, attrs...),
	})
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, errors.New("short rule message")
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		var table, chain string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				table = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if table == d.table && m.Data[0] == unix.NFPROTO_INET {
			counts[chain]++
		}
	}
	return counts, nil
}

// diff lists the keys whose values differ, for logs.
func diff(want, got fingerprint) []string {
	var out []string
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		if w, g := want[k], got[k]; w != g {
			if _, ok := got[k]; !ok {
				out = append(out, k+": missing")
			} else {
				out = append(out, fmt.Sprintf("%s: %d, want %d", k, g, w))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			out = append(out, k+": unexpected")
		}
	}
	const limit = 10
	if len(out) > limit {
		out = append(out[:limit], fmt.Sprintf("and %d more", len(out)-limit))
	}
	return out
}
