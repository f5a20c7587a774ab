// Package invariant holds the rules that a chaos run checks after every
// look at the cluster: what must stay true of Services' addresses whatever
// fails. It is pure: the runner feeds it snapshots read from the real
// apiserver and records what it changed on purpose.
package invariant

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/pharos-lb/pharos/internal/config"
)

// Service is what the checker needs of one LoadBalancer Service.
type Service struct {
	// Name is "namespace/name".
	Name string
	// IPs are the addresses in status.loadBalancer.ingress.
	IPs []netip.Addr
	// Pool is the pool the controller says they come from
	// (pharos.io/ip-allocated-from-pool).
	Pool string
	// SharingKey is pharos.io/allow-shared-ip, or empty.
	SharingKey string
}

// Violation is one broken rule.
type Violation struct {
	// Rule is a short name: "shared", "outside-pool", "changed".
	Rule string
	// Detail names the Services and addresses.
	Detail string
}

func (v Violation) String() string { return v.Rule + ": " + v.Detail }

// expectation is a change the runner made that may give a Service new
// addresses: it holds until the Service has addresses from Pool.
type expectation struct{ pool string }

// Checker checks snapshots against the rules, remembering what it saw.
// It is not safe for concurrent use.
type Checker struct {
	last   map[string][]netip.Addr
	expect map[string]expectation
	// kept are addresses a Service held in a range since removed from its
	// pool: the pool's protection lets it keep them, and only it.
	kept map[netip.Addr]string
}

// New returns a Checker that has seen nothing.
func New() *Checker {
	return &Checker{last: map[string][]netip.Addr{}, expect: map[string]expectation{}, kept: map[netip.Addr]string{}}
}

// Expect records that the runner moved a Service to another pool (or
// created it): its addresses may change until they come from pool.
func (c *Checker) Expect(service, pool string) {
	c.expect[service] = expectation{pool: pool}
}

// Forget records that the runner deleted a Service.
func (c *Checker) Forget(service string) {
	delete(c.last, service)
	delete(c.expect, service)
	for a, s := range c.kept {
		if s == service {
			delete(c.kept, a)
		}
	}
}

// Shrunk records that the runner removed ranges from a pool while the
// given Services existed: those that held addresses in the removed ranges
// may keep them (no other Service may get one).
func (c *Checker) Shrunk(removed []config.Range, services []Service) {
	for _, s := range services {
		for _, a := range s.IPs {
			for _, r := range removed {
				if r.Contains(a) {
					c.kept[a] = s.Name
				}
			}
		}
	}
}

// Observe checks one snapshot: the Services as read, and each pool's
// ranges as its spec says now. It returns the rules broken.
//
//   - shared: one address held by two Services that do not share one
//     sharing key;
//   - outside-pool: an address outside its pool's ranges (unless its
//     Service held it when the range was removed), or from a pool that
//     does not exist;
//   - changed: a Service the runner did not move got other addresses, or
//     lost them.
func (c *Checker) Observe(services []Service, pools map[string][]config.Range) []Violation {
	var out []Violation
	services = slices.Clone(services)
	for i := range services {
		services[i].IPs = slices.Clone(services[i].IPs)
		slices.SortFunc(services[i].IPs, netip.Addr.Compare)
	}
	holders := map[netip.Addr][]Service{}
	for _, s := range services {
		for _, a := range s.IPs {
			holders[a] = append(holders[a], s)
		}
	}
	addrs := make([]netip.Addr, 0, len(holders))
	for a := range holders {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		hs := holders[a]
		if len(hs) < 2 {
			continue
		}
		key := hs[0].SharingKey
		for _, h := range hs[1:] {
			if key == "" || h.SharingKey != key {
				var names []string
				for _, h := range hs {
					names = append(names, fmt.Sprintf("%s (key %q)", h.Name, h.SharingKey))
				}
				out = append(out, Violation{"shared", fmt.Sprintf("%s is held by %s", a, strings.Join(names, " and "))})
				break
			}
		}
	}

	seen := map[string]bool{}
	for _, s := range services {
		seen[s.Name] = true
		for _, a := range s.IPs {
			ranges, ok := pools[s.Pool]
			switch {
			case !ok:
				out = append(out, Violation{"outside-pool", fmt.Sprintf("%s holds %s from pool %q, which does not exist", s.Name, a, s.Pool)})
			case !inRanges(a, ranges) && c.kept[a] != s.Name:
				out = append(out, Violation{"outside-pool", fmt.Sprintf("%s holds %s, outside pool %s (%s)", s.Name, a, s.Pool, rangesString(ranges))})
			}
		}
		prev, had := c.last[s.Name]
		if e, moving := c.expect[s.Name]; moving {
			if len(s.IPs) > 0 && s.Pool == e.pool {
				delete(c.expect, s.Name)
				c.last[s.Name] = s.IPs
			}
			continue
		}
		switch {
		case !had:
			if len(s.IPs) > 0 {
				c.last[s.Name] = s.IPs
			}
		case !slices.Equal(prev, s.IPs):
			now := "none"
			if len(s.IPs) > 0 {
				now = fmt.Sprint(s.IPs)
			}
			out = append(out, Violation{"changed", fmt.Sprintf("%s had %v and now has %s, though nothing asked it to move", s.Name, prev, now)})
			if len(s.IPs) > 0 {
				c.last[s.Name] = s.IPs
			}
		}
	}
	return out
}

func inRanges(a netip.Addr, ranges []config.Range) bool {
	for _, r := range ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func rangesString(ranges []config.Range) string {
	var s []string
	for _, r := range ranges {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}
