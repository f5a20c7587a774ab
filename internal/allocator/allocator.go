// Package allocator assigns LoadBalancer addresses to Services from the
// validated pools of internal/config. It is pure logic with no Kubernetes
// client: the controller feeds it Services and pools and writes the results.
//
// Every decision is deterministic: pools are tried in a fixed order and the
// lowest free address is taken, found in O(log n) in the number of used
// address runs, never by scanning a pool.
//
// An Allocator is not safe for concurrent use; callers serialise access.
package allocator

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/pharos-lb/pharos/internal/config"
)

// Reason says why a Service has, or lacks, addresses. The values are the
// reasons of the Service condition pharos.io/IPAllocated.
type Reason string

const (
	// Allocated means the Service holds its addresses.
	Allocated Reason = "Allocated"
	// NoMatchingPool means no valid pool may serve the Service.
	NoMatchingPool Reason = "NoMatchingPool"
	// PoolExhausted means every pool that may serve the Service is full.
	PoolExhausted Reason = "PoolExhausted"
	// RequestedIPUnavailable means a requested address is outside every
	// pool or held by a Service it cannot be shared with.
	RequestedIPUnavailable Reason = "RequestedIPUnavailable"
	// SharingConflict means two Services that asked to share an address
	// break one of the sharing rules.
	SharingConflict Reason = "SharingConflict"
	// InvalidRequest means the Service's request contradicts itself.
	InvalidRequest Reason = "InvalidRequest"
)

// Error is an allocation failure with the condition reason it maps to.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Message }

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy string

const (
	// SingleStack gives one address, of the Service's first family.
	SingleStack FamilyPolicy = "SingleStack"
	// PreferDualStack gives one address per family when one pool can.
	PreferDualStack FamilyPolicy = "PreferDualStack"
	// RequireDualStack gives one address per family, or none.
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Port is a (protocol, port) pair that a Service exposes.
type Port struct {
	Protocol string
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Request describes what a Service asks for.
type Request struct {
	// Key identifies the Service, as "namespace/name".
	Key string
	// Service is what pool selection matches on.
	Service config.ServiceInfo
	// Families are the Service's spec.ipFamilies, in order.
	Families []config.Family
	// Policy is the Service's spec.ipFamilyPolicy.
	Policy FamilyPolicy
	// RequestedIPs are the addresses asked for, at most one per family.
	RequestedIPs []netip.Addr
	// Pool is the pool asked for, or "".
	Pool string
	// SharingKey is the pharos.io/allow-shared-ip value, or "".
	SharingKey string
	// BackendKey must be equal between Services sharing an address: the
	// pod selector for externalTrafficPolicy Local, "" for Cluster.
	BackendKey string
	// Ports are the Service's ports.
	Ports []Port
}

// Assignment is the addresses a Service holds and the pool they come from.
type Assignment struct {
	Pool string
	IPs  []netip.Addr
}

// ipUse records who holds one address.
type ipUse struct {
	pool       string
	sharingKey string
	backendKey string
	users      map[string][]Port
}

type poolState struct {
	pool     *config.Pool
	segments []*segment
}

// Allocator holds every assignment.
type Allocator struct {
	pools    map[string]*poolState
	ips      map[netip.Addr]*ipUse
	services map[string]*serviceState
	// draining names the pools being deleted: they keep their
	// assignments and give no new address.
	draining map[string]bool
}

type serviceState struct {
	req Request
	asg Assignment
}

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:    map[string]*poolState{},
		ips:      map[netip.Addr]*ipUse{},
		services: map[string]*serviceState{},
		draining: map[string]bool{},
	}
}

// SetConfig replaces the pools. Assignments whose pool is still there are
// kept, even for addresses that the pool's new ranges no longer include
// (a shrunk pool, avoidBuggyIPs turned on): those stay held, so no one else
// gets them, until their Service releases them (see Outside). Assignments
// whose pool is gone are released, and the keys of those Services are
// returned, sorted, so they can be assigned again.
func (a *Allocator) SetConfig(cfg *config.Config) []string {
	a.pools = map[string]*poolState{}
	for name, p := range cfg.Pools {
		ps := &poolState{pool: p}
		for _, r := range p.Ranges {
			ps.segments = append(ps.segments, newSegment(r, p.AvoidBuggyIPs))
		}
		a.pools[name] = ps
	}
	var evicted []string
	for addr, use := range a.ips {
		if a.pools[use.pool] == nil {
			for key := range use.users {
				evicted = append(evicted, key)
			}
			continue
		}
		a.markUsed(addr, use.pool)
	}
	sort.Strings(evicted)
	evicted = compactStrings(evicted)
	for _, key := range evicted {
		a.Release(key)
	}
	return evicted
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (ps *poolState) segmentOf(addr netip.Addr) (*segment, ordinal, bool) {
	for _, s := range ps.segments {
		if p, ok := s.position(addr); ok {
			return s, p, true
		}
	}
	return nil, ordinal{}, false
}

func (ps *poolState) markUsed(addr netip.Addr) {
	if s, p, ok := ps.segmentOf(addr); ok {
		s.used.add(p)
	}
}

func (ps *poolState) markFree(addr netip.Addr) {
	if s, p, ok := ps.segmentOf(addr); ok {
		s.used.remove(p)
	}
}

// holderOf returns the pool whose ranges hold addr: pool, the one it is
// assigned from, when it contains it, else whichever other pool does (an
// address that a shrunk pool keeps may since be in another pool's ranges,
// which must not give it away while it is held); nil when none does.
func (a *Allocator) holderOf(addr netip.Addr, pool string) *poolState {
	if ps := a.pools[pool]; ps != nil && ps.pool.Contains(addr) {
		return ps
	}
	if name, ok := a.poolContaining(addr); ok {
		return a.pools[name]
	}
	return nil
}

// markUsed marks a held address used in the pool whose ranges hold it.
func (a *Allocator) markUsed(addr netip.Addr, pool string) {
	if ps := a.holderOf(addr, pool); ps != nil {
		ps.markUsed(addr)
	}
}

// markFree marks a released address free in the pool whose ranges hold it.
func (a *Allocator) markFree(addr netip.Addr, pool string) {
	if ps := a.holderOf(addr, pool); ps != nil {
		ps.markFree(addr)
	}
}

// Draining reports whether the pool is being deleted (see SetDraining).
func (a *Allocator) Draining(pool string) bool { return a.draining[pool] }

// SetDraining names the pools that are being deleted (replacing the last
// set): they keep the addresses they have assigned, also across SetConfig,
// Assign and Restore, but give no new address to anyone, not even one
// shared with a Service that holds it or a missing family.
func (a *Allocator) SetDraining(pools map[string]bool) {
	a.draining = map[string]bool{}
	for name, d := range pools {
		if d {
			a.draining[name] = true
		}
	}
}

// Users returns the keys of the Services that hold addresses from the
// pool, sorted.
func (a *Allocator) Users(pool string) []string {
	var out []string
	for key, st := range a.services {
		if st.asg.Pool == pool {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// Held is a Service's addresses that its pool no longer includes.
type Held struct {
	Key string
	IPs []netip.Addr
}

// Outside returns, sorted by Service, the addresses that Services hold from
// the pool although its ranges no longer include them (SetConfig keeps
// them). Empty when the pool is unknown.
func (a *Allocator) Outside(pool string) []Held {
	ps := a.pools[pool]
	if ps == nil {
		return nil
	}
	var out []Held
	for key, st := range a.services {
		if st.asg.Pool != pool {
			continue
		}
		var ips []netip.Addr
		for _, addr := range st.asg.IPs {
			if !ps.pool.Contains(addr) {
				ips = append(ips, addr)
			}
		}
		if len(ips) > 0 {
			out = append(out, Held{Key: key, IPs: ips})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (ps *poolState) lowestFree(f config.Family) (netip.Addr, bool) {
	for _, s := range ps.segments {
		if s.rng.Family() != f {
			continue
		}
		if addr, ok := s.lowestFree(); ok {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// Assigned returns the Service's current assignment, if any.
func (a *Allocator) Assigned(key string) (Assignment, bool) {
	st, ok := a.services[key]
	if !ok {
		return Assignment{}, false
	}
	return Assignment{Pool: st.asg.Pool, IPs: append([]netip.Addr(nil), st.asg.IPs...)}, true
}

// Release frees the Service's addresses. Shared addresses stay held while
// another Service uses them.
func (a *Allocator) Release(key string) {
	st, ok := a.services[key]
	if !ok {
		return
	}
	delete(a.services, key)
	for _, addr := range st.asg.IPs {
		use := a.ips[addr]
		if use == nil {
			continue
		}
		delete(use.users, key)
		if len(use.users) > 0 {
			continue
		}
		delete(a.ips, addr)
		a.markFree(addr, use.pool)
	}
}

// Restore re-registers an assignment that a Service already holds, as read
// back from its status after a restart. It fails, changing nothing, if an
// address is outside every pool or cannot be shared with its holder.
func (a *Allocator) Restore(req Request, ips []netip.Addr) error {
	if len(ips) == 0 {
		return fail(InvalidRequest, "no address to restore")
	}
	pool := ""
	for _, addr := range ips {
		name, ok := a.poolContaining(addr)
		if !ok {
			return fail(RequestedIPUnavailable, "%s is not in any valid IPAddressPool", addr)
		}
		if pool != "" && name != pool {
			return fail(InvalidRequest, "%s and %s come from different pools", ips[0], addr)
		}
		pool = name
		if err := a.canShare(req, addr); err != nil {
			return err
		}
	}
	a.Release(req.Key)
	a.hold(req, Assignment{Pool: pool, IPs: ips})
	return nil
}

// RestoreFrom is Restore for a Service whose status names the pool its
// addresses come from (pharos.io/ip-allocated-from-pool): when that pool
// exists and no pool's ranges hold the addresses, they are restored as
// held outside it, as SetConfig keeps them when a pool shrinks, so that a
// restart does not take them away. Otherwise it is Restore.
func (a *Allocator) RestoreFrom(req Request, pool string, ips []netip.Addr) error {
	if a.pools[pool] == nil || len(ips) == 0 {
		return a.Restore(req, ips)
	}
	for _, addr := range ips {
		if name, ok := a.poolContaining(addr); ok && name != pool {
			return a.Restore(req, ips)
		}
		if err := a.canShare(req, addr); err != nil {
			return err
		}
		if use := a.ips[addr]; use != nil && use.pool != pool {
			return fail(RequestedIPUnavailable, "%s is held from pool %q", addr, use.pool)
		}
	}
	a.Release(req.Key)
	a.hold(req, Assignment{Pool: pool, IPs: ips})
	return nil
}

func (a *Allocator) poolContaining(addr netip.Addr) (string, bool) {
	for name, ps := range a.pools {
		if ps.pool.Contains(addr) {
			return name, true
		}
	}
	return "", false
}

func (a *Allocator) hold(req Request, asg Assignment) {
	for _, addr := range asg.IPs {
		use := a.ips[addr]
		if use == nil {
			use = &ipUse{pool: asg.Pool, sharingKey: req.SharingKey, backendKey: req.BackendKey, users: map[string][]Port{}}
			a.ips[addr] = use
			a.markUsed(addr, asg.Pool)
		}
		use.users[req.Key] = req.Ports
	}
	a.services[req.Key] = &serviceState{req: req, asg: asg}
}

// canShare reports why req cannot use addr, or nil if addr is free or can
// be shared with every Service on it.
func (a *Allocator) canShare(req Request, addr netip.Addr) *Error {
	use := a.ips[addr]
	if use == nil {
		return nil
	}
	others := make([]string, 0, len(use.users))
	for key := range use.users {
		if key != req.Key {
			others = append(others, key)
		}
	}
	if len(others) == 0 {
		return nil
	}
	sort.Strings(others)
	holder := others[0]
	if req.SharingKey == "" || use.sharingKey == "" {
		return fail(RequestedIPUnavailable, "%s is held by Service %s; to share it, give both Services the same pharos.io/allow-shared-ip annotation", addr, holder)
	}
	if req.SharingKey != use.sharingKey {
		return fail(SharingConflict, "%s is shared under key %q by Service %s, but this Service has key %q; use the same pharos.io/allow-shared-ip value", addr, use.sharingKey, holder, req.SharingKey)
	}
	if req.BackendKey != use.backendKey {
		return fail(SharingConflict, "%s is shared by Service %s, which selects other pods; Services with externalTrafficPolicy Local may share an address only if they have the same selector and policy", addr, holder)
	}
	for _, key := range others {
		for _, p := range use.users[key] {
			for _, q := range req.Ports {
				if p == q {
					return fail(SharingConflict, "%s port %s is already used by Service %s on that address; use another port or another address", addr, p, key)
				}
			}
		}
	}
	return nil
}

// Assign gives the Service addresses, or keeps those it has when they still
// satisfy its request. It is idempotent.
func (a *Allocator) Assign(req Request) (Assignment, error) {
	if err := validate(req); err != nil {
		return Assignment{}, err
	}
	if asg, ok := a.keep(req); ok {
		return asg, nil
	}
	a.Release(req.Key)
	asg, err := a.assignNew(req)
	if err != nil {
		return Assignment{}, err
	}
	a.hold(req, asg)
	return asg, nil
}

func validate(req Request) *Error {
	if len(req.Families) == 0 {
		return fail(InvalidRequest, "the Service has no spec.ipFamilies")
	}
	seen := map[config.Family]bool{}
	for _, ip := range req.RequestedIPs {
		f := config.FamilyOf(ip)
		if seen[f] {
			return fail(InvalidRequest, "two %s addresses requested; request at most one address per family", f)
		}
		seen[f] = true
		if !hasFamily(req.Families, f) {
			return fail(InvalidRequest, "requested %s is %s, but the Service's ipFamilies are %s; request an address of the Service's family", ip, f, familiesString(req.Families))
		}
	}
	if len(req.RequestedIPs) == 1 && req.Policy == RequireDualStack {
		return fail(InvalidRequest, "the Service requires dual-stack but requests only %s; request one address per family", req.RequestedIPs[0])
	}
	if len(req.RequestedIPs) == 2 && req.Policy == SingleStack {
		return fail(InvalidRequest, "the Service is SingleStack but requests two addresses; request one, or set ipFamilyPolicy to PreferDualStack")
	}
	return nil
}

func hasFamily(fs []config.Family, f config.Family) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

func familiesString(fs []config.Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// wantedFamilies returns the families to assign, most wanted first.
func wantedFamilies(req Request) []config.Family {
	if req.Policy == SingleStack || len(req.Families) == 1 {
		return req.Families[:1]
	}
	return req.Families
}

// keep returns the current assignment if it still fits the request,
// completing a missing family from the same pool when it can.
func (a *Allocator) keep(req Request) (Assignment, bool) {
	st, ok := a.services[req.Key]
	if !ok {
		return Assignment{}, false
	}
	asg := st.asg
	ps := a.pools[asg.Pool]
	if ps == nil {
		return Assignment{}, false
	}
	if req.Pool != "" && req.Pool != asg.Pool {
		return Assignment{}, false
	}
	if len(req.RequestedIPs) > 0 && !sameSet(req.RequestedIPs, asg.IPs) {
		return Assignment{}, false
	}
	wanted := wantedFamilies(req)
	var kept []netip.Addr
	// Addresses outside the pool's current ranges are kept too: SetConfig
	// keeps them for the Service until it releases them.
	for _, addr := range asg.IPs {
		if hasFamily(wanted, config.FamilyOf(addr)) {
			kept = append(kept, addr)
		}
	}
	if len(kept) == 0 {
		return Assignment{}, false
	}
	// Re-check sharing against the others, as ports or keys may have changed.
	a.Release(req.Key)
	for _, addr := range kept {
		if a.canShare(req, addr) != nil {
			return Assignment{}, false
		}
	}
	if len(req.RequestedIPs) == 0 && len(kept) < len(wanted) && !a.draining[asg.Pool] {
		for _, f := range wanted {
			if hasFamily(familiesOf(kept), f) {
				continue
			}
			if addr, ok := a.pick(ps, req, f); ok {
				kept = append(kept, addr)
			}
		}
	}
	if req.Policy == RequireDualStack && len(kept) < 2 {
		return Assignment{}, false
	}
	sortByFamily(kept, req.Families)
	out := Assignment{Pool: asg.Pool, IPs: kept}
	a.hold(req, out)
	return out, true
}

func familiesOf(ips []netip.Addr) []config.Family {
	out := make([]config.Family, len(ips))
	for i, ip := range ips {
		out[i] = config.FamilyOf(ip)
	}
	return out
}

func sortByFamily(ips []netip.Addr, order []config.Family) {
	rank := func(ip netip.Addr) int {
		for i, f := range order {
			if config.FamilyOf(ip) == f {
				return i
			}
		}
		return len(order)
	}
	sort.SliceStable(ips, func(i, j int) bool { return rank(ips[i]) < rank(ips[j]) })
}

func sameSet(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (a *Allocator) assignNew(req Request) (Assignment, *Error) {
	if len(req.RequestedIPs) > 0 {
		return a.assignRequested(req)
	}
	candidates, err := a.candidatePools(req)
	if err != nil {
		return Assignment{}, err
	}
	wanted := wantedFamilies(req)
	if len(wanted) == 2 {
		for _, ps := range candidates {
			if asg, ok := a.fromPool(ps, req, wanted); ok {
				return asg, nil
			}
		}
		if req.Policy == RequireDualStack {
			return Assignment{}, a.exhausted(candidates, req, wanted)
		}
	}
	for _, f := range wanted {
		for _, ps := range candidates {
			if asg, ok := a.fromPool(ps, req, []config.Family{f}); ok {
				return asg, nil
			}
		}
	}
	return Assignment{}, a.exhausted(candidates, req, wanted)
}

func (a *Allocator) exhausted(candidates []*poolState, req Request, wanted []config.Family) *Error {
	names := make([]string, 0, len(candidates))
	servesAll := false
	for _, ps := range candidates {
		names = append(names, ps.pool.Name)
		v4, v6 := ps.pool.Families()
		has := map[config.Family]bool{config.IPv4: v4, config.IPv6: v6}
		all := true
		for _, f := range wanted {
			all = all && has[f]
		}
		servesAll = servesAll || all
	}
	if req.Policy == RequireDualStack && !servesAll {
		return fail(NoMatchingPool, "the Service requires dual-stack, but no pool that serves it (%s) holds both IPv4 and IPv6 addresses; add both families to one pool", strings.Join(names, ", "))
	}
	if !anyFamily(candidates, wanted) {
		return fail(NoMatchingPool, "no pool that serves this Service (%s) has %s addresses; add a %s range to a pool", strings.Join(names, ", "), familiesString(wanted), wanted[0])
	}
	return fail(PoolExhausted, "no free %s address in pool(s) %s; free an address or add addresses to a pool", familiesString(wanted), strings.Join(names, ", "))
}

func anyFamily(pools []*poolState, fs []config.Family) bool {
	for _, ps := range pools {
		v4, v6 := ps.pool.Families()
		for _, f := range fs {
			if (f == config.IPv4 && v4) || (f == config.IPv6 && v6) {
				return true
			}
		}
	}
	return false
}

// fromPool takes one address per family from the pool, or nothing.
func (a *Allocator) fromPool(ps *poolState, req Request, fs []config.Family) (Assignment, bool) {
	asg := Assignment{Pool: ps.pool.Name}
	for _, f := range fs {
		addr, ok := a.pick(ps, req, f)
		if !ok {
			return Assignment{}, false
		}
		asg.IPs = append(asg.IPs, addr)
	}
	return asg, true
}

// pick chooses an address of family f in the pool: the lowest address
// already shared under the Service's sharing key that it may join, else the
// lowest free address.
func (a *Allocator) pick(ps *poolState, req Request, f config.Family) (netip.Addr, bool) {
	if req.SharingKey != "" {
		var best netip.Addr
		for addr, use := range a.ips {
			if use.pool != ps.pool.Name || use.sharingKey != req.SharingKey || config.FamilyOf(addr) != f || !ps.pool.Contains(addr) {
				continue
			}
			if (!best.IsValid() || addr.Less(best)) && a.canShare(req, addr) == nil {
				best = addr
			}
		}
		if best.IsValid() {
			return best, true
		}
	}
	return ps.lowestFree(f)
}

// candidatePools returns the pools that may serve the Service, in the
// order they are tried: pools whose serviceAllocation selects the Service,
// then the others; within each, by priority (unset last), then by name.
func (a *Allocator) candidatePools(req Request) ([]*poolState, *Error) {
	if req.Pool != "" {
		ps := a.pools[req.Pool]
		if ps == nil {
			return nil, fail(NoMatchingPool, "requested pool %q does not exist or is invalid; check pharos.io/address-pool and the pool's Valid condition", req.Pool)
		}
		if a.draining[req.Pool] {
			return nil, fail(NoMatchingPool, "requested pool %q is being deleted and gives no new address; request another pool in pharos.io/address-pool", req.Pool)
		}
		if !ps.pool.Matches(req.Service) {
			return nil, fail(NoMatchingPool, "requested pool %q does not serve Services in namespace %q with these labels (see its spec.serviceAllocation)", req.Pool, req.Service.Namespace)
		}
		return []*poolState{ps}, nil
	}
	var out []*poolState
	for _, ps := range a.pools {
		if ps.pool.AutoAssign && !a.draining[ps.pool.Name] && ps.pool.Matches(req.Service) {
			out = append(out, ps)
		}
	}
	if len(out) == 0 {
		return nil, fail(NoMatchingPool, "no valid IPAddressPool with autoAssign serves Services in namespace %q with these labels; create a pool or widen a pool's serviceAllocation", req.Service.Namespace)
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := out[i].pool, out[j].pool
		if pi.Restricted() != pj.Restricted() {
			return pi.Restricted()
		}
		ri, rj := priorityRank(pi), priorityRank(pj)
		if ri != rj {
			return ri < rj
		}
		return pi.Name < pj.Name
	})
	return out, nil
}

func priorityRank(p *config.Pool) int {
	if p.Allocation == nil || p.Allocation.Priority <= 0 {
		return int(^uint(0) >> 1)
	}
	return p.Allocation.Priority
}

func (a *Allocator) assignRequested(req Request) (Assignment, *Error) {
	pool := ""
	for _, addr := range req.RequestedIPs {
		name, ok := a.poolContaining(addr)
		if !ok {
			return Assignment{}, fail(RequestedIPUnavailable, "requested %s is not in any valid IPAddressPool (or is a .0/.255 address that avoidBuggyIPs excludes); request an address from a pool", addr)
		}
		if req.Pool != "" && name != req.Pool {
			return Assignment{}, fail(InvalidRequest, "requested %s belongs to pool %q, not to the requested pool %q; drop one of the two requests", addr, name, req.Pool)
		}
		if pool != "" && name != pool {
			return Assignment{}, fail(InvalidRequest, "requested %s and %s belong to different pools (%q, %q); request addresses of one pool", req.RequestedIPs[0], addr, pool, name)
		}
		pool = name
	}
	if a.draining[pool] {
		return Assignment{}, fail(RequestedIPUnavailable, "requested address belongs to pool %q, which is being deleted and gives no new address; request an address of another pool", pool)
	}
	if ps := a.pools[pool]; !ps.pool.Matches(req.Service) {
		return Assignment{}, fail(NoMatchingPool, "requested address belongs to pool %q, which does not serve Services in namespace %q with these labels (see its spec.serviceAllocation)", pool, req.Service.Namespace)
	}
	for _, addr := range req.RequestedIPs {
		if err := a.canShare(req, addr); err != nil {
			return Assignment{}, err
		}
		if use := a.ips[addr]; use != nil && use.pool != pool {
			// Kept by a Service of a pool that no longer includes it.
			return Assignment{}, fail(RequestedIPUnavailable, "requested %s is still held by a Service of pool %q, which no longer includes it; it is free once that Service releases it", addr, use.pool)
		}
	}
	ips := append([]netip.Addr(nil), req.RequestedIPs...)
	sortByFamily(ips, req.Families)
	return Assignment{Pool: pool, IPs: ips}, nil
}

// PoolStats are the counts reported in IPAddressPool status.
type PoolStats struct {
	AssignedIPv4, AssignedIPv6   int64
	AvailableIPv4, AvailableIPv6 int64
	// SizeIPv4 and SizeIPv6 count the pool's usable addresses, as floats
	// so that an IPv6 pool larger than 2^63 addresses is not capped.
	SizeIPv4, SizeIPv6 float64
}

// Stats returns the pool's counts; ok is false for an unknown pool.
func (a *Allocator) Stats(pool string) (PoolStats, bool) {
	ps := a.pools[pool]
	if ps == nil {
		return PoolStats{}, false
	}
	var used4, used6, size4, size6 ordinal
	for _, s := range ps.segments {
		if s.rng.First.Is4() {
			used4, size4 = used4.add(s.used.count), size4.add(s.size)
		} else {
			used6, size6 = used6.add(s.used.count), size6.add(s.size)
		}
	}
	return PoolStats{
		AssignedIPv4:  used4.int64Capped(),
		AssignedIPv6:  used6.int64Capped(),
		AvailableIPv4: size4.sub(used4).int64Capped(),
		AvailableIPv6: size6.sub(used6).int64Capped(),
		SizeIPv4:      size4.float64(),
		SizeIPv6:      size6.float64(),
	}, true
}
