// Package config turns the IPAddressPool objects of a cluster into a
// validated model that the allocator uses. It has no Kubernetes client: it
// is pure, deterministic and safe to fuzz. The controller and the validating
// webhook both use it, so the two never disagree.
package config

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// Pool is a validated IPAddressPool.
type Pool struct {
	// Name is the IPAddressPool's name.
	Name string
	// Labels are the pool's labels, for L2Advertisement pool selectors.
	Labels map[string]string
	// Ranges are the pool's addresses, sorted and disjoint.
	Ranges []Range
	// AutoAssign lets Services that request no pool get addresses here.
	AutoAssign bool
	// AvoidBuggyIPs keeps IPv4 addresses ending in .0 and .255 unassigned.
	AvoidBuggyIPs bool
	// Allocation restricts the pool to some Services; nil serves all.
	Allocation *Allocation
	// Generation is the metadata.generation of the spec this was built from.
	Generation int64
	// Created orders pools by age: the older of two overlapping pools wins.
	Created time.Time
}

// Allocation is a validated serviceAllocation.
type Allocation struct {
	// Priority orders matching pools; 0 means none, after all others.
	Priority int
	// Namespaces allowed by name.
	Namespaces map[string]bool
	// NamespaceSelectors allow namespaces by label.
	NamespaceSelectors []labels.Selector
	// ServiceSelectors allow Services by label.
	ServiceSelectors []labels.Selector
}

// Families returns which families the pool holds addresses of.
func (p *Pool) Families() (v4, v6 bool) {
	for _, r := range p.Ranges {
		if r.Family() == IPv4 {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// Contains reports whether a is one of the pool's addresses. An address that
// avoidBuggyIPs excludes is not contained.
func (p *Pool) Contains(a netip.Addr) bool {
	if p.AvoidBuggyIPs && IsBuggy(a) {
		return false
	}
	i := sort.Search(len(p.Ranges), func(i int) bool { return a.Compare(p.Ranges[i].Last) <= 0 })
	return i < len(p.Ranges) && p.Ranges[i].Contains(a)
}

// IsBuggy reports whether a is an IPv4 address ending in .0 or .255, which
// some client firmware mistakes for a broadcast address.
func IsBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

// ServiceInfo is what pool matching needs to know about a Service.
type ServiceInfo struct {
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
}

// Matches reports whether the pool's serviceAllocation admits the Service.
// A pool without serviceAllocation, or with only a priority, admits all.
func (p *Pool) Matches(s ServiceInfo) bool {
	a := p.Allocation
	if a == nil {
		return true
	}
	if len(a.Namespaces) > 0 || len(a.NamespaceSelectors) > 0 {
		ok := a.Namespaces[s.Namespace]
		for _, sel := range a.NamespaceSelectors {
			if ok {
				break
			}
			ok = sel.Matches(labels.Set(s.NamespaceLabels))
		}
		if !ok {
			return false
		}
	}
	if len(a.ServiceSelectors) > 0 {
		for _, sel := range a.ServiceSelectors {
			if sel.Matches(labels.Set(s.Labels)) {
				return true
			}
		}
		return false
	}
	return true
}

// Restricted reports whether the pool serves only the Services its
// serviceAllocation selects (as opposed to only carrying a priority).
func (p *Pool) Restricted() bool {
	a := p.Allocation
	return a != nil && (len(a.Namespaces) > 0 || len(a.NamespaceSelectors) > 0 || len(a.ServiceSelectors) > 0)
}

// Config is the validated set of pools.
type Config struct {
	// Pools by name. Only valid pools are here; see Result.Errors.
	Pools map[string]*Pool
}

// Result is the outcome of Build.
type Result struct {
	// Config holds every pool that can be used.
	Config *Config
	// Errors lists, per pool name, why the pool's current spec was rejected.
	// A rejected pool may still be in Config with its last valid spec; see
	// Stale.
	Errors map[string]field.ErrorList
	// Stale names the pools that are used with their last valid spec
	// because their current spec was rejected.
	Stale map[string]bool
}

// Build validates the pools and returns the usable model. previous, the
// result of the last Build (or nil), lets a pool whose new spec is invalid
// keep serving with its last valid spec, so that a bad edit never takes
// addresses away from Services. Among overlapping pools, pools whose spec
// is unchanged since previous win over edited or new ones, then the older
// one (by creation time, then name) wins. So neither adding a pool nor
// growing one into another's addresses breaks the pool that was there.
func Build(pools []v1beta1.IPAddressPool, previous *Config) Result {
	res := Result{
		Config: &Config{Pools: map[string]*Pool{}},
		Errors: map[string]field.ErrorList{},
		Stale:  map[string]bool{},
	}
	sorted := append([]v1beta1.IPAddressPool(nil), pools...)
	unchanged := func(p *v1beta1.IPAddressPool) bool {
		if previous == nil {
			return false
		}
		prev := previous.Pools[p.Name]
		return prev != nil && prev.Generation == p.Generation && prev.Created.Equal(p.CreationTimestamp.Time)
	}
	sort.SliceStable(sorted, func(i, j int) bool {
		if ui, uj := unchanged(&sorted[i]), unchanged(&sorted[j]); ui != uj {
			return ui
		}
		ti, tj := sorted[i].CreationTimestamp.Time, sorted[j].CreationTimestamp.Time
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return sorted[i].Name < sorted[j].Name
	})

	var accepted []owned
	for i := range sorted {
		obj := &sorted[i]
		pool, errs := ParsePool(obj)
		if len(errs) == 0 {
			errs = overlapErrors(pool, obj, accepted)
		}
		if len(errs) > 0 {
			res.Errors[obj.Name] = errs
			var prev *Pool
			if previous != nil {
				prev = previous.Pools[obj.Name]
			}
			if prev == nil || len(overlapErrors(prev, nil, accepted)) > 0 {
				continue
			}
			pool = prev
			res.Stale[obj.Name] = true
		}
		res.Config.Pools[pool.Name] = pool
		for _, r := range pool.Ranges {
			accepted = append(accepted, owned{r: r, pool: pool.Name})
		}
	}
	return res
}

type owned struct {
	r    Range
	pool string
}

// overlapErrors reports the ranges of p that overlap ranges already
// accepted for other pools. obj, when given, supplies the field paths.
func overlapErrors(p *Pool, obj *v1beta1.IPAddressPool, accepted []owned) field.ErrorList {
	var errs field.ErrorList
	addrs := field.NewPath("spec", "addresses")
	for _, r := range p.Ranges {
		for _, o := range accepted {
			if o.pool == p.Name || !r.Overlaps(o.r) {
				continue
			}
			path, value := addrs, r.String()
			if obj != nil {
				for i, s := range obj.Spec.Addresses {
					if pr, err := ParseRange(s); err == nil && pr == r {
						path, value = addrs.Index(i), s
						break
					}
				}
			}
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf(
				"overlaps %s of IPAddressPool %q; an address may belong to one pool only: remove the overlap from one of the two pools",
				o.r, o.pool)))
		}
	}
	return errs
}

// ParsePool validates one pool on its own (everything but overlaps with
// other pools) and returns its model.
func ParsePool(obj *v1beta1.IPAddressPool) (*Pool, field.ErrorList) {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	p := &Pool{
		Name:          obj.Name,
		Labels:        obj.Labels,
		AutoAssign:    obj.Spec.AutoAssign == nil || *obj.Spec.AutoAssign,
		AvoidBuggyIPs: obj.Spec.AvoidBuggyIPs,
		Generation:    obj.Generation,
		Created:       obj.CreationTimestamp.Time,
	}

	addrs := spec.Child("addresses")
	if len(obj.Spec.Addresses) == 0 {
		errs = append(errs, field.Required(addrs, "a pool needs at least one CIDR or range, for example 198.18.100.0/24"))
	}
	type indexed struct {
		r Range
		i int
	}
	var parsed []indexed
	for i, s := range obj.Spec.Addresses {
		r, err := ParseRange(s)
		if err != nil {
			errs = append(errs, field.Invalid(addrs.Index(i), s, err.Error()))
			continue
		}
		parsed = append(parsed, indexed{r, i})
	}
	sort.SliceStable(parsed, func(a, b int) bool {
		ra, rb := parsed[a].r, parsed[b].r
		if ra.First.BitLen() != rb.First.BitLen() {
			return ra.First.BitLen() < rb.First.BitLen()
		}
		if ra.First != rb.First {
			return ra.First.Less(rb.First)
		}
		return ra.Last.Less(rb.Last)
	})
	// Each entry is checked against the accepted entry that reaches
	// furthest, so every overlapping entry is reported, not only the first.
	reach := -1
	for k := range parsed {
		if reach >= 0 && parsed[reach].r.Overlaps(parsed[k].r) {
			prev := parsed[reach]
			msg := fmt.Sprintf("overlaps spec.addresses[%d] (%s) of the same pool; remove one of the two", prev.i, obj.Spec.Addresses[prev.i])
			if prev.r == parsed[k].r {
				msg = fmt.Sprintf("duplicates spec.addresses[%d]; remove one of the two", prev.i)
			}
			errs = append(errs, field.Duplicate(addrs.Index(parsed[k].i), obj.Spec.Addresses[parsed[k].i]))
			errs[len(errs)-1].Detail = msg
			continue
		}
		if reach < 0 || parsed[reach].r.Last.BitLen() != parsed[k].r.Last.BitLen() || parsed[reach].r.Last.Less(parsed[k].r.Last) {
			reach = k
		}
		p.Ranges = append(p.Ranges, parsed[k].r)
	}

	if sa := obj.Spec.ServiceAllocation; sa != nil {
		p.Allocation, errs = parseAllocation(sa, spec.Child("serviceAllocation"), errs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func parseAllocation(sa *v1beta1.ServiceAllocation, path *field.Path, errs field.ErrorList) (*Allocation, field.ErrorList) {
	a := &Allocation{Priority: sa.Priority, Namespaces: map[string]bool{}}
	if sa.Priority < 0 {
		errs = append(errs, field.Invalid(path.Child("priority"), sa.Priority, "must be 0 (no priority) or more; 1 is tried first"))
	}
	for i, ns := range sa.Namespaces {
		p := path.Child("namespaces").Index(i)
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p, ns, "not a namespace name: "+msgs[0]))
			continue
		}
		if a.Namespaces[ns] {
			errs = append(errs, field.Duplicate(p, ns))
			errs[len(errs)-1].Detail = "listed twice; remove one"
			continue
		}
		a.Namespaces[ns] = true
	}
	a.NamespaceSelectors, errs = parseSelectors(sa.NamespaceSelectors, path.Child("namespaceSelectors"), errs)
	a.ServiceSelectors, errs = parseSelectors(sa.ServiceSelectors, path.Child("serviceSelectors"), errs)
	return a, errs
}

func parseSelectors(in []metav1.LabelSelector, path *field.Path, errs field.ErrorList) ([]labels.Selector, field.ErrorList) {
	var out []labels.Selector
	seen := map[string]int{}
	for i := range in {
		p := path.Index(i)
		sel, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			errs = append(errs, field.Invalid(p, in[i].String(), "not a valid label selector: "+err.Error()))
			continue
		}
		if sel.Empty() {
			errs = append(errs, field.Invalid(p, "{}", "an empty selector matches everything; remove it, or write the labels it should match"))
			continue
		}
		if j, dup := seen[sel.String()]; dup {
			errs = append(errs, field.Duplicate(p, sel.String()))
			errs[len(errs)-1].Detail = fmt.Sprintf("same selector as %s", path.Index(j))
			continue
		}
		seen[sel.String()] = i
		out = append(out, sel)
	}
	return out, errs
}

// ValidatePool says what is wrong with obj if it replaced its stored
// version among others (which may include that version). It is the
// admission webhook's check and agrees with Build by construction: the
// stored pools, obj's old version among them, are what the controller has
// as its previous Config, and obj is the next state it will Build. So obj
// gets exactly the errors Build will report for it once it is stored: an
// edit that leaves obj's spec (and so its generation) alone keeps the
// precedence obj already had, and a new or edited spec loses overlaps to
// the pools already there.
func ValidatePool(obj *v1beta1.IPAddressPool, others []v1beta1.IPAddressPool) field.ErrorList {
	next := make([]v1beta1.IPAddressPool, 0, len(others)+1)
	for _, o := range others {
		if o.Name != obj.Name {
			next = append(next, o)
		}
	}
	previous := Build(others, nil).Config
	return Build(append(next, *obj), previous).Errors[obj.Name]
}
