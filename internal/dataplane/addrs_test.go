package dataplane

import "net/netip"

// Test addresses: the benchmarking range 198.18.0.0/15 and the
// documentation range 2001:db8::/32 only.
var (
	vip4  = netip.MustParseAddr("198.18.200.10")
	vip6  = netip.MustParseAddr("2001:db8:200::10")
	pod4a = netip.MustParseAddr("198.18.201.2")
	pod4b = netip.MustParseAddr("198.18.201.3")
	pod6a = netip.MustParseAddr("2001:db8:201::2")
)
