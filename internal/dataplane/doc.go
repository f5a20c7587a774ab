// Package dataplane programs the speaker's node-local forwarding path: on
// the node that carries a Service IP, nftables rules DNAT traffic for
// VIP:port straight to the Service's ready endpoints, for clusters that run
// without kube-proxy ("direct" mode).
//
// The package owns one table of the inet family (Options.Table, "pharos"
// by default) and never reads or writes any other table. It talks to the
// kernel over netlink through github.com/google/nftables and never runs
// nft, iptables or ip.
//
// The work is split in two. Plan is pure: it turns a Config into a
// Ruleset, a model of the whole table whose String method prints it in
// nft's syntax, so that unit tests read like the rules they expect. A
// Dataplane then writes a Ruleset into the kernel: every Sync deletes the
// table and builds it again in one netlink batch, which the kernel applies
// as one transaction, so packets see either the old table or the new one,
// never a half-written one.
//
// The table, for a frontend with two remote backends:
//
//	nat_prerouting (nat, prerouting, dstnat-10)  \  ip daddr . meta l4proto . th dport
//	nat_output     (nat, output, dstnat-10)      /  vmap @frontends4 -> jump fe_...
//	fe_...         jhash ip saddr . th sport mod 2 vmap { 0 : goto fe_..._b0, 1 : goto fe_..._b1 }
//	fe_..._b0      ct mark set ct mark | MasqueradeMark; dnat to backend 0
//	nat_postrouting (nat, postrouting, srcnat-10) ct mark & MasqueradeMark != 0 masquerade
//	filter_prerouting (filter, prerouting, dstnat-20) source ranges: drop and count
//
// Priorities: the nat chains run at dstnat-10, before kube-proxy's (at
// dstnat), because the first NAT rule that binds a connection wins and
// later nat chains are not consulted for it. The source-range filter runs
// at dstnat-20, before our DNAT, while the destination is still the VIP.
// No chain of ours hooks forward, so forwarded traffic is never blocked by
// this table.
package dataplane

// MasqueradeMark is the conntrack mark bit set on connections that this
// table DNATs to a backend on another node without PreserveClient. The
// postrouting chain masquerades exactly the connections with this bit, so
// nothing that other software NATs or forwards is ever masqueraded by us.
// A conntrack mark rather than a packet mark because the packet mark is
// shared with kube-proxy (0x4000, 0x8000), Calico (0xffff0000) and
// others, who may rewrite it between prerouting and postrouting; the bit
// is set with ct mark | bit, so other bits of the mark are kept.
const MasqueradeMark uint32 = 0x00200000

// HashSeed is the jhash seed of backend choice. It is fixed, never random,
// so that every node computes the same hash for the same flow: see
// Spread.
const HashSeed uint32 = 0x70686172 // "phar"

// DefaultTable is the table name when Options.Table is empty.
const DefaultTable = "pharos"

// Chain priorities, relative to nft's named priorities (dstnat = -100,
// srcnat = 100).
const (
	priorityFilterPrerouting int32 = -100 - 20 // dstnat-20
	priorityDNAT             int32 = -100 - 10 // dstnat-10
	prioritySNAT             int32 = 100 - 10  // srcnat-10
)
