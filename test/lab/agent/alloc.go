package agent

import (
	"fmt"
	"net/netip"
)

// lowestFreeHost returns the lowest address of cidr that is a usable pod
// address and for which used reports false. Usable means: not the network
// address, not the first host (the bridge holds it as the pods' gateway), and
// for IPv4 not the broadcast address. So the first pod of 198.18.33.0/24 gets
// .2 and the last one .254; for IPv6 the first is ::2.
//
// The search is linear from the bottom, which is fine here: it stops at the
// first free address, so it costs at most one step per address in use.
func lowestFreeHost(cidr netip.Prefix, used func(netip.Addr) bool) (netip.Addr, error) {
	if !cidr.IsValid() {
		return netip.Addr{}, fmt.Errorf("invalid pod CIDR")
	}
	cidr = cidr.Masked()
	a := cidr.Addr().Next() // first host: the gateway, never handed out
	if !a.IsValid() || !cidr.Contains(a) {
		return netip.Addr{}, fmt.Errorf("pod CIDR %s has no room for pods", cidr)
	}
	for a = a.Next(); a.IsValid() && cidr.Contains(a); a = a.Next() {
		if cidr.Addr().Is4() && isLastOf(cidr, a) {
			break // IPv4 broadcast
		}
		if !used(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod CIDR %s is full", cidr)
}

// isLastOf reports whether a is the highest address of cidr.
func isLastOf(cidr netip.Prefix, a netip.Addr) bool {
	n := a.Next()
	return !n.IsValid() || !cidr.Contains(n)
}

// gatewayOf returns the first host of cidr, which the node's pod bridge holds
// and pods use as their default gateway.
func gatewayOf(cidr netip.Prefix) netip.Addr {
	return cidr.Masked().Addr().Next()
}
