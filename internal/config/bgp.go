package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// BGP defaults, where the spec leaves a field unset.
const (
	DefaultHoldTime    = 90 * time.Second
	DefaultConnectTime = 5 * time.Second
	DefaultBFDInterval = 300 // milliseconds
	DefaultBFDMultiply = 3
)

// BGPPeer is a validated BGPPeer.
type BGPPeer struct {
	Name       string
	MyASN      uint32
	PeerASN    uint32 // 0 with DynamicASN
	DynamicASN v1beta1.DynamicASNMode
	Address    netip.Addr
	Port       uint16
	// Source is the session's source address; invalid means the kernel's
	// choice.
	Source netip.Addr
	// RouterID is the BGP identifier; invalid means the node's default.
	RouterID                   netip.Addr
	HoldTime, Keepalive        time.Duration
	ConnectTime                time.Duration
	Password                   string
	PasswordSecret             *corev1.SecretReference
	EBGPMultiHop               bool
	BFDProfile                 string
	GracefulRestart, DisableMP bool
	NodeSelectors              []labels.Selector
	Generation                 int64
}

// SelectsNode reports whether a node with these labels opens the session.
func (p *BGPPeer) SelectsNode(nodeLabels map[string]string) bool {
	return selectsAny(p.NodeSelectors, nodeLabels)
}

// IBGP reports whether the session is internal (same AS).
func (p *BGPPeer) IBGP() bool {
	return p.PeerASN == p.MyASN || p.DynamicASN == v1beta1.DynamicASNInternal
}

// ParseBGPPeer validates one BGPPeer on its own; CheckBGP checks it
// against the other objects.
func ParseBGPPeer(obj *v1beta1.BGPPeer) (*BGPPeer, field.ErrorList) {
	spec := field.NewPath("spec")
	s := obj.Spec
	p := &BGPPeer{Name: obj.Name, MyASN: s.MyASN, PeerASN: s.PeerASN, DynamicASN: s.DynamicASN, Port: s.PeerPort,
		Password: s.Password, PasswordSecret: s.PasswordSecret, EBGPMultiHop: s.EBGPMultiHop, BFDProfile: s.BFDProfile,
		GracefulRestart: s.EnableGracefulRestart, DisableMP: s.DisableMP, Generation: obj.Generation}
	var errs field.ErrorList
	if p.Port == 0 {
		p.Port = 179
	}
	if s.MyASN == 0 {
		errs = append(errs, field.Required(spec.Child("myASN"), "the nodes' AS number, for example 64512"))
	}
	switch {
	case s.PeerASN != 0 && s.DynamicASN != "":
		errs = append(errs, field.Invalid(spec.Child("dynamicASN"), s.DynamicASN, "set either peerASN or dynamicASN, not both"))
	case s.PeerASN == 0 && s.DynamicASN == "":
		errs = append(errs, field.Required(spec.Child("peerASN"), "the router's AS number (or dynamicASN: internal or external)"))
	case s.DynamicASN != "" && s.DynamicASN != v1beta1.DynamicASNInternal && s.DynamicASN != v1beta1.DynamicASNExternal:
		errs = append(errs, field.NotSupported(spec.Child("dynamicASN"), s.DynamicASN, []string{"internal", "external"}))
	}
	var err error
	if p.Address, err = ParseAddress(s.PeerAddress); err != nil {
		errs = append(errs, field.Invalid(spec.Child("peerAddress"), s.PeerAddress, "not an IP address; write the router's address, for example 198.18.96.1"))
	}
	if s.SourceAddress != "" {
		if p.Source, err = ParseAddress(s.SourceAddress); err != nil {
			errs = append(errs, field.Invalid(spec.Child("sourceAddress"), s.SourceAddress, "not an IP address"))
		} else if p.Address.IsValid() && p.Source.Is4() != p.Address.Is4() {
			errs = append(errs, field.Invalid(spec.Child("sourceAddress"), s.SourceAddress, "must be of the peerAddress's family"))
		}
	}
	if s.RouterID != "" {
		if p.RouterID, err = netip.ParseAddr(s.RouterID); err != nil || !p.RouterID.Is4() {
			errs = append(errs, field.Invalid(spec.Child("routerID"), s.RouterID, "a BGP identifier is an IPv4 address, for example 198.18.96.11"))
		}
	}
	p.HoldTime, p.Keepalive = DefaultHoldTime, DefaultHoldTime/3
	switch {
	case s.HoldTime != nil && s.KeepaliveTime != nil:
		p.HoldTime, p.Keepalive = s.HoldTime.Duration, s.KeepaliveTime.Duration
	case s.HoldTime != nil:
		p.HoldTime, p.Keepalive = s.HoldTime.Duration, s.HoldTime.Duration/3
	case s.KeepaliveTime != nil:
		p.HoldTime, p.Keepalive = 3*s.KeepaliveTime.Duration, s.KeepaliveTime.Duration
	}
	if p.HoldTime != 0 && p.HoldTime < 3*time.Second || p.HoldTime%time.Second != 0 {
		errs = append(errs, field.Invalid(spec.Child("holdTime"), p.HoldTime.String(), "must be 0 or at least 3s, in whole seconds"))
	}
	if p.Keepalive > p.HoldTime || p.Keepalive%time.Second != 0 || p.Keepalive < 0 {
		errs = append(errs, field.Invalid(spec.Child("keepaliveTime"), p.Keepalive.String(), "must be whole seconds and at most the hold time"))
	}
	p.ConnectTime = DefaultConnectTime
	if s.ConnectTime != nil {
		p.ConnectTime = s.ConnectTime.Duration
		if p.ConnectTime < time.Second || p.ConnectTime > 65535*time.Second || p.ConnectTime%time.Second != 0 {
			errs = append(errs, field.Invalid(spec.Child("connectTime"), p.ConnectTime.String(), "must be 1s to 65535s, in whole seconds"))
		}
	}
	// RFC 2385 carries at most 80 bytes of key (the CRD's maxLength too).
	if len(s.Password) > 80 {
		errs = append(errs, field.TooLong(spec.Child("password"), "", 80))
	}
	if s.Password != "" && s.PasswordSecret != nil {
		errs = append(errs, field.Invalid(spec.Child("passwordSecret"), s.PasswordSecret.Name, "set either password or passwordSecret, not both"))
	}
	if s.PasswordSecret != nil && (s.PasswordSecret.Name == "" || s.PasswordSecret.Namespace == "") {
		errs = append(errs, field.Required(spec.Child("passwordSecret"), "name and namespace of a kubernetes.io/basic-auth Secret with key password"))
	}
	if s.EBGPMultiHop && p.IBGP() && s.DynamicASN == "" {
		errs = append(errs, field.Invalid(spec.Child("ebgpMultiHop"), true, "applies to eBGP only; this peer is in myASN (iBGP), remove it"))
	}
	p.NodeSelectors, errs = parseSelectors(s.NodeSelectors, spec.Child("nodeSelectors"), errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// BFD is a validated BFDProfile.
type BFD struct {
	Name string
	// ReceiveMs and TransmitMs are milliseconds.
	ReceiveMs, TransmitMs uint32
	Multiplier            uint32
}

// ParseBFDProfile validates a BFDProfile. GoBGP's BFD (what the speaker
// runs) is single-hop and active, so a profile that asks for passive mode
// or a minimum TTL below 254 is refused with that reason rather than
// silently not honoured.
func ParseBFDProfile(obj *v1beta1.BFDProfile) (*BFD, field.ErrorList) {
	spec := field.NewPath("spec")
	b := &BFD{Name: obj.Name, ReceiveMs: DefaultBFDInterval, TransmitMs: DefaultBFDInterval, Multiplier: DefaultBFDMultiply}
	var errs field.ErrorList
	interval := func(v *uint32, name string, dst *uint32) {
		if v == nil {
			return
		}
		if *v < 10 || *v > 60000 {
			errs = append(errs, field.Invalid(spec.Child(name), *v, "milliseconds, 10 to 60000"))
			return
		}
		*dst = *v
	}
	interval(obj.Spec.ReceiveInterval, "receiveInterval", &b.ReceiveMs)
	interval(obj.Spec.TransmitInterval, "transmitInterval", &b.TransmitMs)
	if m := obj.Spec.DetectMultiplier; m != nil {
		if *m < 2 || *m > 255 {
			errs = append(errs, field.Invalid(spec.Child("detectMultiplier"), *m, "2 to 255"))
		} else {
			b.Multiplier = *m
		}
	}
	if obj.Spec.PassiveMode != nil && *obj.Spec.PassiveMode {
		errs = append(errs, field.Invalid(spec.Child("passiveMode"), true, "not supported: Pharos's BFD (GoBGP's) always starts the session; remove passiveMode"))
	}
	if t := obj.Spec.MinimumTTL; t != nil && *t < 254 {
		errs = append(errs, field.Invalid(spec.Child("minimumTtl"), *t, "not supported below 254: Pharos's BFD is single-hop (packets arrive with TTL 255); remove minimumTtl or set 254"))
	} else if t != nil && *t > 255 {
		errs = append(errs, field.Invalid(spec.Child("minimumTtl"), *t, "a TTL is at most 255; remove minimumTtl or set 254"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return b, nil
}

// Community is a BGP community: standard (RFC 1997) or large (RFC 8092).
type Community struct {
	// Large says Value is unused and LargeValue holds the community.
	Large      bool
	Value      uint32
	LargeValue [3]uint32
}

// String writes the community as a BGPAdvertisement does.
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.LargeValue[0], c.LargeValue[1], c.LargeValue[2])
	}
	return fmt.Sprintf("%d:%d", c.Value>>16, c.Value&0xffff)
}

// ParseCommunity parses "65000:100" or "large:64512:1:2".
func ParseCommunity(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, "large:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return Community{}, fmt.Errorf("%q: a large community is large:ASN:value:value, for example large:64512:1:2", s)
		}
		var c Community
		c.Large = true
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("%q: each part of a large community is a number up to 4294967295", s)
			}
			c.LargeValue[i] = uint32(v)
		}
		return c, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return Community{}, fmt.Errorf("%q: a community is ASN:value with both up to 65535 (65000:100), large:ASN:value:value, or the name of a Community alias", s)
	}
	return Community{Value: uint32(a)<<16 | uint32(b)}, nil
}

// ParseCommunityAliases reads the Community objects into aliases by name.
// An alias defined twice with different values, or with a bad value, is an
// error on the object that defines it, and is left out.
func ParseCommunityAliases(objs []v1beta1.Community) (map[string]Community, map[string]field.ErrorList) {
	out := map[string]Community{}
	from := map[string]string{}
	errs := map[string]field.ErrorList{}
	sorted := append([]v1beta1.Community(nil), objs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, obj := range sorted {
		for i, a := range obj.Spec.Communities {
			p := field.NewPath("spec", "communities").Index(i)
			// An alias is looked up before a value is parsed: one named
			// 65000:100 would change what 65000:100 means everywhere.
			switch {
			case strings.TrimSpace(a.Name) == "":
				errs[obj.Name] = append(errs[obj.Name], field.Required(p.Child("name"), "the alias's name, which BGPAdvertisements write in spec.communities, for example no-export"))
				continue
			case strings.Contains(a.Name, ":"):
				errs[obj.Name] = append(errs[obj.Name], field.Invalid(p.Child("name"), a.Name,
					"an alias name has no ':'; a name like a community value would stand for another value wherever that value is written"))
				continue
			}
			c, err := ParseCommunity(a.Value)
			if err != nil {
				errs[obj.Name] = append(errs[obj.Name], field.Invalid(p.Child("value"), a.Value, err.Error()))
				continue
			}
			if old, dup := out[a.Name]; dup && old != c {
				errs[obj.Name] = append(errs[obj.Name], field.Invalid(p.Child("name"), a.Name,
					fmt.Sprintf("already defined as %s by Community %s; rename one", old, from[a.Name])))
				continue
			}
			out[a.Name], from[a.Name] = c, obj.Name
		}
	}
	return out, errs
}

// BGPAdvertisement is a validated BGPAdvertisement.
type BGPAdvertisement struct {
	Name string
	// AggregationLength and AggregationLengthV6 are the prefix lengths
	// advertised (32 and 128 by default).
	AggregationLength, AggregationLengthV6 int
	LocalPref                              *uint32
	Communities                            []Community
	Pools                                  map[string]bool
	PoolSelectors                          []labels.Selector
	ServiceSelectors                       []labels.Selector
	NodeSelectors                          []labels.Selector
	// Peers names the BGPPeers that get the routes; empty means all.
	Peers map[string]bool
}

// SelectsPoolNamed reports whether the advertisement covers the pool.
func (a *BGPAdvertisement) SelectsPoolNamed(name string, poolLabels map[string]string) bool {
	return selectsPool(a.Pools, a.PoolSelectors, name, poolLabels)
}

// SelectsNode reports whether a node with these labels advertises.
func (a *BGPAdvertisement) SelectsNode(nodeLabels map[string]string) bool {
	return selectsAny(a.NodeSelectors, nodeLabels)
}

// SelectsService reports whether the advertisement covers a Service with
// these labels.
func (a *BGPAdvertisement) SelectsService(svcLabels map[string]string) bool {
	return selectsAny(a.ServiceSelectors, svcLabels)
}

// SelectsPeer reports whether the routes go to the named BGPPeer.
func (a *BGPAdvertisement) SelectsPeer(name string) bool {
	return len(a.Peers) == 0 || a.Peers[name]
}

// ParseBGPAdvertisement validates one BGPAdvertisement. aliases resolves
// community names; poolExists says which pools exist (missing ones are not
// errors, they are returned for the status).
func ParseBGPAdvertisement(obj *v1beta1.BGPAdvertisement, aliases map[string]Community, poolExists func(string) bool) (*BGPAdvertisement, []string, field.ErrorList) {
	spec := field.NewPath("spec")
	s := obj.Spec
	a := &BGPAdvertisement{Name: obj.Name, AggregationLength: 32, AggregationLengthV6: 128, LocalPref: s.LocalPref,
		Pools: map[string]bool{}, Peers: map[string]bool{}}
	var errs field.ErrorList
	var missing []string
	if s.AggregationLength != nil {
		if *s.AggregationLength < 1 || *s.AggregationLength > 32 {
			errs = append(errs, field.Invalid(spec.Child("aggregationLength"), *s.AggregationLength, "1 to 32"))
		} else {
			a.AggregationLength = int(*s.AggregationLength)
		}
	}
	if s.AggregationLengthV6 != nil {
		if *s.AggregationLengthV6 < 1 || *s.AggregationLengthV6 > 128 {
			errs = append(errs, field.Invalid(spec.Child("aggregationLengthV6"), *s.AggregationLengthV6, "1 to 128"))
		} else {
			a.AggregationLengthV6 = int(*s.AggregationLengthV6)
		}
	}
	seen := map[Community]bool{}
	for i, c := range s.Communities {
		p := spec.Child("communities").Index(i)
		v, ok := aliases[c]
		if !ok {
			var err error
			if v, err = ParseCommunity(c); err != nil {
				if !strings.Contains(c, ":") {
					errs = append(errs, field.Invalid(p, c, fmt.Sprintf("no Community alias %q exists; define it in a Community object or write the value (65000:100, large:64512:1:2)", c)))
				} else {
					errs = append(errs, field.Invalid(p, c, err.Error()))
				}
				continue
			}
		}
		if !seen[v] {
			seen[v] = true
			a.Communities = append(a.Communities, v)
		}
	}
	// The lists are sets (the CRD's schema refuses an entry twice): a
	// duplicate is refused here too, as for L2Advertisements.
	errs = duplicates(s.Communities, spec.Child("communities"), errs)
	errs = duplicates(s.IPAddressPools, spec.Child("ipAddressPools"), errs)
	errs = duplicates(s.Peers, spec.Child("peers"), errs)
	for i, name := range s.IPAddressPools {
		p := spec.Child("ipAddressPools").Index(i)
		if strings.TrimSpace(name) == "" {
			errs = append(errs, field.Invalid(p, name, "empty pool name; name an IPAddressPool or remove the entry"))
			continue
		}
		if a.Pools[name] {
			continue
		}
		a.Pools[name] = true
		if poolExists == nil || !poolExists(name) {
			missing = append(missing, name)
		}
	}
	for i, name := range s.Peers {
		if strings.TrimSpace(name) == "" {
			errs = append(errs, field.Invalid(spec.Child("peers").Index(i), name, "empty peer name; name a BGPPeer or remove the entry"))
			continue
		}
		a.Peers[name] = true
	}
	a.PoolSelectors, errs = parseSelectors(s.IPAddressPoolSelectors, spec.Child("ipAddressPoolSelectors"), errs)
	a.NodeSelectors, errs = parseSelectors(s.NodeSelectors, spec.Child("nodeSelectors"), errs)
	a.ServiceSelectors, errs = parseSelectors(s.ServiceSelectors, spec.Child("serviceSelectors"), errs)
	if len(s.ServiceSelectors) > 0 && (a.AggregationLength != 32 || a.AggregationLengthV6 != 128) {
		errs = append(errs, field.Invalid(spec.Child("serviceSelectors"), len(s.ServiceSelectors),
			"only with the default aggregation lengths (32 and 128): an aggregate covers other Services' addresses"))
	}
	sort.Strings(missing)
	if len(errs) > 0 {
		return nil, missing, errs
	}
	return a, missing, nil
}

// duplicates reports the entries of list that repeat an earlier one.
func duplicates(list []string, path *field.Path, errs field.ErrorList) field.ErrorList {
	seen := make(map[string]bool, len(list))
	for i, v := range list {
		if seen[v] {
			e := field.Duplicate(path.Index(i), v)
			e.Detail = "listed twice; remove one"
			errs = append(errs, e)
		}
		seen[v] = true
	}
	return errs
}

// AggregationErrors checks that aggregating the pool's addresses to the
// advertisement's lengths stays inside the pool: a prefix that covers
// addresses outside the pool would draw other hosts' traffic.
func AggregationErrors(adv *BGPAdvertisement, pool *Pool) field.ErrorList {
	var errs field.ErrorList
	for _, r := range mergeAdjacent(pool.Ranges) {
		length, name := adv.AggregationLength, "aggregationLength"
		if r.First.Is6() {
			length, name = adv.AggregationLengthV6, "aggregationLengthV6"
		}
		if length == r.First.BitLen() {
			continue
		}
		first := netip.PrefixFrom(r.First, length).Masked()
		lastBlock := netip.PrefixFrom(r.Last, length).Masked()
		if first.Addr() != r.First || lastRangeOf(lastBlock) != r.Last {
			errs = append(errs, field.Invalid(field.NewPath("spec", name), length,
				fmt.Sprintf("pool %s's range %s is not made of whole /%d prefixes: advertising them would cover addresses outside the pool; use a longer length", pool.Name, r, length)))
		}
	}
	return errs
}

// mergeAdjacent joins sorted, disjoint ranges that touch (two /25s listed
// separately make one /24).
func mergeAdjacent(rs []Range) []Range {
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Last.Next() == r.First {
			out[n-1].Last = r.Last
			continue
		}
		out = append(out, r)
	}
	return out
}

// lastRangeOf returns the last address of p.
func lastRangeOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// AggregatedPrefix is the prefix advertised for ip under adv.
func (a *BGPAdvertisement) AggregatedPrefix(ip netip.Addr) netip.Prefix {
	l := a.AggregationLength
	if ip.Is6() {
		l = a.AggregationLengthV6
	}
	return netip.PrefixFrom(ip, l).Masked()
}

// LocalPrefConflicts returns, for each pair of advertisements that send a
// common pool's prefixes to a common peer from a common node with
// different localPref, an error naming both; the second in name order is
// the one at fault. pools and peers are the known objects, for selection.
func LocalPrefConflicts(advs []*BGPAdvertisement, pools map[string]map[string]string) map[string]field.ErrorList {
	out := map[string]field.ErrorList{}
	sorted := append([]*BGPAdvertisement(nil), advs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i, a := range sorted {
		if a.LocalPref == nil {
			continue
		}
		for _, b := range sorted[:i] {
			if b.LocalPref == nil || *b.LocalPref == *a.LocalPref || !overlapPeers(a, b) {
				continue
			}
			for name, lbls := range pools {
				if a.SelectsPoolNamed(name, lbls) && b.SelectsPoolNamed(name, lbls) &&
					a.AggregationLength == b.AggregationLength && a.AggregationLengthV6 == b.AggregationLengthV6 {
					out[a.Name] = append(out[a.Name], field.Invalid(field.NewPath("spec", "localPref"), *a.LocalPref,
						fmt.Sprintf("BGPAdvertisement %s sends pool %s's prefixes to the same peers with localPref %d; make them agree", b.Name, name, *b.LocalPref)))
					break
				}
			}
		}
	}
	return out
}

func overlapPeers(a, b *BGPAdvertisement) bool {
	if len(a.Peers) == 0 || len(b.Peers) == 0 {
		return true
	}
	for p := range a.Peers {
		if b.Peers[p] {
			return true
		}
	}
	return false
}
