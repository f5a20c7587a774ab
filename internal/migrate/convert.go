// Package migrate converts MetalLB's configuration (metallb.io objects and
// the MetalLB annotations of Services) into Pharos's, for kubectl pharos
// migrate-metallb. It is pure: it reads bytes or objects already listed,
// and has no Kubernetes client, so the conversion can be tested and fuzzed
// on its own and gives the same answer offline and against a cluster.
//
// Pharos keeps MetalLB's field names where the concept is the same, so most
// fields carry over unchanged. Every MetalLB field that has no Pharos
// equivalent is reported as a Problem rather than dropped silently, and
// every converted object is checked with internal/config, the validation
// the controller, the speakers and the webhook use, so that the output is
// what Pharos accepts.
package migrate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// DefaultNamespace is the namespace the Pharos chart's documentation
// installs into, used when Options.Namespace is empty.
const DefaultNamespace = "pharos-system"

// Options tune a conversion.
type Options struct {
	// Namespace is the namespace Pharos runs in. Every Pharos kind is
	// cluster-scoped, so converted objects carry no namespace; the one
	// namespaced reference a conversion writes is a BGPPeer's
	// passwordSecret, which Pharos's speakers read in their own namespace
	// only. Empty means DefaultNamespace.
	Namespace string
}

// Result is a conversion's output: Pharos objects that Pharos's own
// validation accepts, sorted by name, and the Problems found on the way.
type Result struct {
	IPAddressPools    []v1beta1.IPAddressPool
	Communities       []v1beta1.Community
	BFDProfiles       []v1beta1.BFDProfile
	BGPPeers          []v1beta1.BGPPeer
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
	// Services are the Services that carried MetalLB annotations, with
	// those rewritten to pharos.io; other Services are left out, as there
	// is nothing to change.
	Services []corev1.Service
	// Problems lists, in input order, what could not be read or converted
	// faithfully.
	Problems []Problem
}

// HasErrors reports whether a Problem of severity Error was found: applying
// the Result would then not do what MetalLB did.
func (r *Result) HasErrors() bool {
	for _, p := range r.Problems {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

// item is a converted object with the source it came from, so that the
// validation's findings are reported on the MetalLB object the user wrote.
// fatal marks an object that cannot be converted at all; it is left out
// without validation, whose errors would only repeat the reason.
type item[T any] struct {
	src   *Source
	obj   T
	fatal bool
}

// converter holds one conversion's state.
type converter struct {
	opts     Options
	problems []Problem

	pools    []item[v1beta1.IPAddressPool]
	comms    []item[v1beta1.Community]
	bfds     []item[v1beta1.BFDProfile]
	peers    []item[v1beta1.BGPPeer]
	l2s      []item[v1beta1.L2Advertisement]
	bgps     []item[v1beta1.BGPAdvertisement]
	services []corev1.Service
	svcSrc   []*Source

	// seen finds two input objects that become one Pharos object: MetalLB
	// objects are namespaced, Pharos's are not (and a BGPPeer may be given
	// at both of MetalLB's versions).
	seen map[string]*Source
}

func (c *converter) add(p Problem) { c.problems = append(c.problems, p) }

// Convert turns MetalLB objects into Pharos objects. Problems found while
// reading are not repeated: pass them along with the Result's. An object
// with a field Pharos lacks is converted without it, with an Error; an
// object Pharos's validation rejects is left out, with the reasons.
func Convert(sources []Source, opts Options) Result {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	c := &converter{opts: opts, seen: map[string]*Source{}}
	for i := range sources {
		c.convert(&sources[i])
	}
	c.validate()
	return c.result()
}

func (c *converter) convert(s *Source) {
	if s.obj == nil {
		return
	}
	key := s.Kind + "/" + s.Name
	if _, isSvc := s.obj.(*corev1.Service); isSvc {
		key = "Service/" + s.Namespace + "/" + s.Name
	}
	if prev, dup := c.seen[key]; dup {
		c.add(s.problem(Error, "", "a %s named %q was also read from %s; Pharos's %s is cluster-scoped, so the names of MetalLB's objects (in any namespace) must be unique: rename one (this one is left out)",
			s.Kind, s.Name, where(prev), s.Kind))
		return
	}
	c.seen[key] = s
	switch o := s.obj.(type) {
	case *metallbIPAddressPool:
		c.pools = append(c.pools, c.pool(s, o))
	case *metallbL2Advertisement:
		c.l2s = append(c.l2s, c.l2(s, o))
	case *metallbBGPAdvertisement:
		c.bgps = append(c.bgps, c.bgpAdv(s, o))
	case *metallbCommunity:
		c.comms = append(c.comms, c.community(s, o))
	case *metallbBFDProfile:
		c.bfds = append(c.bfds, c.bfd(s, o))
	case *metallbBGPPeerV1beta1:
		c.peers = append(c.peers, c.peer(s, v1beta1ToV1beta2(o)))
	case *metallbBGPPeerV1beta2:
		c.peers = append(c.peers, c.peer(s, o))
	case *corev1.Service:
		if svc, ok := c.service(s, o); ok {
			c.services = append(c.services, svc)
			c.svcSrc = append(c.svcSrc, s)
		}
	}
}

// where names a source's location for a message.
func where(s *Source) string {
	loc := "the cluster"
	if s.File != "" {
		loc = s.File
		if s.Line > 0 {
			loc = fmt.Sprintf("%s:%d", s.File, s.Line)
		}
	}
	if s.Namespace != "" {
		loc += " (namespace " + s.Namespace + ")"
	}
	return loc
}

// typeMeta is the TypeMeta of a Pharos kind.
func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: kind}
}

// lastApplied is kubectl's record of the last applied manifest. It
// describes the MetalLB object, not the converted one, and kubectl writes
// a fresh one when the output is applied.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// meta keeps what a new object should carry over: name, labels (pool
// selectors match them) and annotations. The namespace is dropped because
// every Pharos kind is cluster-scoped; what the API server set (uid,
// resourceVersion, timestamps, managedFields, owners) belongs to the
// MetalLB object.
func meta(om metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: om.Name}
	if len(om.Labels) > 0 {
		out.Labels = make(map[string]string, len(om.Labels))
		for k, v := range om.Labels {
			out.Labels[k] = v
		}
	}
	for k, v := range om.Annotations {
		if k == lastApplied {
			continue
		}
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[k] = v
	}
	return out
}

// isEmptySelector reports whether a label selector matches everything.
func isEmptySelector(s *metav1.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// selectors copies a list of selectors. MetalLB reads an empty selector as
// "everything", which makes the whole list match everything; Pharos
// refuses empty selectors (they are usually a mistake) and says
// "everything" with an empty list. So a list holding one is written as no
// list, with a warning, and all reports that it did.
func (c *converter) selectors(s *Source, field string, in []metav1.LabelSelector) (out []metav1.LabelSelector, all bool) {
	for i := range in {
		if isEmptySelector(&in[i]) {
			c.add(s.problem(Warning, fmt.Sprintf("%s[%d]", field, i), "an empty selector matches everything, so the whole list does; written as no %s, which means the same in Pharos", field))
			return nil, true
		}
	}
	for i := range in {
		out = append(out, *in[i].DeepCopy())
	}
	return out, false
}

func (c *converter) pool(s *Source, m *metallbIPAddressPool) item[v1beta1.IPAddressPool] {
	out := v1beta1.IPAddressPool{TypeMeta: typeMeta("IPAddressPool"), ObjectMeta: meta(m.ObjectMeta)}
	for i, a := range m.Spec.Addresses {
		// MetalLB parses a CIDR with Go's net.ParseCIDR, which keeps the
		// network and ignores host bits: "198.18.0.10/24" is the whole
		// /24. Pharos refuses host bits (they usually hide a typo), so the
		// network is written out, which is what MetalLB used.
		t := strings.TrimSpace(a)
		if p, err := netip.ParsePrefix(t); err == nil && !strings.Contains(t, "-") && p.Masked() != p {
			c.add(s.problem(Warning, fmt.Sprintf("spec.addresses[%d]", i), "%q has host bits set; MetalLB used the network %s, written as such", a, p.Masked()))
			a = p.Masked().String()
		}
		out.Spec.Addresses = append(out.Spec.Addresses, a)
	}
	out.Spec.AutoAssign = m.Spec.AutoAssign
	out.Spec.AvoidBuggyIPs = m.Spec.AvoidBuggyIPs
	if sa := m.Spec.ServiceAllocation; sa != nil {
		a := &v1beta1.ServiceAllocation{Priority: sa.Priority, Namespaces: append([]string(nil), sa.Namespaces...)}
		var allNS bool
		a.NamespaceSelectors, allNS = c.selectors(s, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors)
		if allNS {
			// A selector that matches every namespace admits every
			// namespace, whatever namespaces lists.
			a.Namespaces = nil
		}
		a.ServiceSelectors, _ = c.selectors(s, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors)
		out.Spec.ServiceAllocation = a
	}
	return item[v1beta1.IPAddressPool]{src: s, obj: out}
}

// poolSelection converts ipAddressPools and ipAddressPoolSelectors: a
// selector that matches every pool selects every pool, which Pharos says
// with neither.
func (c *converter) poolSelection(s *Source, names []string, sels []metav1.LabelSelector) ([]string, []metav1.LabelSelector) {
	out, all := c.selectors(s, "spec.ipAddressPoolSelectors", sels)
	if all {
		return nil, nil
	}
	return append([]string(nil), names...), out
}

func (c *converter) l2(s *Source, m *metallbL2Advertisement) item[v1beta1.L2Advertisement] {
	out := v1beta1.L2Advertisement{TypeMeta: typeMeta("L2Advertisement"), ObjectMeta: meta(m.ObjectMeta)}
	out.Spec.IPAddressPools, out.Spec.IPAddressPoolSelectors = c.poolSelection(s, m.Spec.IPAddressPools, m.Spec.IPAddressPoolSelectors)
	out.Spec.NodeSelectors, _ = c.selectors(s, "spec.nodeSelectors", m.Spec.NodeSelectors)
	out.Spec.Interfaces = append([]string(nil), m.Spec.Interfaces...)
	if len(m.Spec.ServiceSelectors) > 0 {
		c.add(s.problem(Error, "spec.serviceSelectors", "Pharos's L2Advertisement has no serviceSelectors: converted without them, it announces every Service of its pools. To keep announcing only these Services this way, give them a pool of their own (IPAddressPool spec.serviceAllocation.serviceSelectors) and name that pool in spec.ipAddressPools"))
	}
	if len(m.Spec.PreferredNodeSelectors) > 0 {
		c.add(s.problem(Error, "spec.preferredNodeSelectors", "Pharos's layer 2 election has no weighted node preferences: converted without them, any eligible node may announce. To keep the announcement off other nodes (a hard limit, not a preference), use spec.nodeSelectors"))
	}
	return item[v1beta1.L2Advertisement]{src: s, obj: out}
}

func (c *converter) bgpAdv(s *Source, m *metallbBGPAdvertisement) item[v1beta1.BGPAdvertisement] {
	out := v1beta1.BGPAdvertisement{TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta(m.ObjectMeta)}
	sp := &m.Spec
	out.Spec.AggregationLength = copyPtr(sp.AggregationLength)
	out.Spec.AggregationLengthV6 = copyPtr(sp.AggregationLengthV6)
	if sp.LocalPref != 0 {
		// MetalLB's localPref is a plain number whose 0 means unset.
		lp := sp.LocalPref
		out.Spec.LocalPref = &lp
	}
	out.Spec.Communities = append([]string(nil), sp.Communities...)
	out.Spec.IPAddressPools, out.Spec.IPAddressPoolSelectors = c.poolSelection(s, sp.IPAddressPools, sp.IPAddressPoolSelectors)
	out.Spec.NodeSelectors, _ = c.selectors(s, "spec.nodeSelectors", sp.NodeSelectors)
	out.Spec.ServiceSelectors, _ = c.selectors(s, "spec.serviceSelectors", sp.ServiceSelectors)
	out.Spec.Peers = append([]string(nil), sp.Peers...)
	return item[v1beta1.BGPAdvertisement]{src: s, obj: out}
}

func (c *converter) community(s *Source, m *metallbCommunity) item[v1beta1.Community] {
	out := v1beta1.Community{TypeMeta: typeMeta("Community"), ObjectMeta: meta(m.ObjectMeta)}
	for _, a := range m.Spec.Communities {
		out.Spec.Communities = append(out.Spec.Communities, v1beta1.CommunityAlias{Name: a.Name, Value: a.Value})
	}
	return item[v1beta1.Community]{src: s, obj: out}
}

func (c *converter) bfd(s *Source, m *metallbBFDProfile) item[v1beta1.BFDProfile] {
	out := v1beta1.BFDProfile{TypeMeta: typeMeta("BFDProfile"), ObjectMeta: meta(m.ObjectMeta)}
	sp := &m.Spec
	out.Spec.ReceiveInterval = copyPtr(sp.ReceiveInterval)
	out.Spec.TransmitInterval = copyPtr(sp.TransmitInterval)
	out.Spec.DetectMultiplier = copyPtr(sp.DetectMultiplier)
	echo := sp.EchoMode != nil && *sp.EchoMode
	switch {
	case echo:
		c.add(s.problem(Error, "spec.echoMode", "Pharos's BFD (GoBGP's) has no echo mode: converted without it, failures are detected by control packets alone, within receiveInterval × detectMultiplier; lower those if echo made detection faster"))
	case sp.EchoMode != nil:
		c.add(s.problem(Warning, "spec.echoMode", "echo off is Pharos's only mode; removed"))
	}
	if sp.EchoInterval != nil {
		if echo {
			c.add(s.problem(Error, "spec.echoInterval", "no echo mode in Pharos (see spec.echoMode); removed"))
		} else {
			c.add(s.problem(Warning, "spec.echoInterval", "had no effect without echoMode; removed"))
		}
	}
	// Pharos's validation refuses these two with a reason; they are
	// dropped here instead, with the same reason, so that the profile and
	// the peers naming it keep their BFD.
	switch {
	case sp.PassiveMode != nil && *sp.PassiveMode:
		c.add(s.problem(Error, "spec.passiveMode", "Pharos's BFD always starts the session (active mode); removed. The router must not be passive too, or BFD never comes up"))
	case sp.PassiveMode != nil:
		out.Spec.PassiveMode = copyPtr(sp.PassiveMode)
	}
	if t := sp.MinimumTTL; t != nil {
		if *t < 254 {
			c.add(s.problem(Error, "spec.minimumTtl", "Pharos's BFD is single-hop (RFC 5881: packets arrive with TTL 255) and has no multi-hop minimum TTL; removed. A router more than one hop away gets no BFD"))
		} else {
			out.Spec.MinimumTTL = copyPtr(t)
		}
	}
	return item[v1beta1.BFDProfile]{src: s, obj: out}
}

// v1beta1ToV1beta2 converts a v1beta1 BGPPeer as MetalLB's conversion
// webhook does (v1beta2 is MetalLB's storage version): the same fields,
// and the node selectors to LabelSelectors.
func v1beta1ToV1beta2(o *metallbBGPPeerV1beta1) *metallbBGPPeerV1beta2 {
	out := &metallbBGPPeerV1beta2{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}
	sp := &o.Spec
	out.Spec.MyASN, out.Spec.ASN, out.Spec.Address, out.Spec.SrcAddress, out.Spec.Port = sp.MyASN, sp.ASN, sp.Address, sp.SrcAddress, sp.Port
	out.Spec.HoldTime, out.Spec.KeepaliveTime, out.Spec.RouterID = sp.HoldTime, sp.KeepaliveTime, sp.RouterID
	out.Spec.Password, out.Spec.BFDProfile, out.Spec.EBGPMultiHop = sp.Password, sp.BFDProfile, sp.EBGPMultiHop
	for _, ns := range sp.NodeSelectors {
		var sel metav1.LabelSelector
		if len(ns.MatchLabels) > 0 {
			sel.MatchLabels = map[string]string{}
			for k, v := range ns.MatchLabels {
				sel.MatchLabels[k] = v
			}
		}
		for _, e := range ns.MatchExpressions {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: append([]string(nil), e.Values...)})
		}
		out.Spec.NodeSelectors = append(out.Spec.NodeSelectors, sel)
	}
	return out
}

func (c *converter) peer(s *Source, m *metallbBGPPeerV1beta2) item[v1beta1.BGPPeer] {
	out := v1beta1.BGPPeer{TypeMeta: typeMeta("BGPPeer"), ObjectMeta: meta(m.ObjectMeta)}
	sp := &m.Spec
	o := &out.Spec
	o.MyASN, o.PeerASN, o.DynamicASN = sp.MyASN, sp.ASN, v1beta1.DynamicASNMode(sp.DynamicASN)
	o.PeerAddress, o.SourceAddress, o.PeerPort, o.RouterID = sp.Address, sp.SrcAddress, sp.Port, sp.RouterID
	o.HoldTime, o.KeepaliveTime, o.ConnectTime = copyPtr(sp.HoldTime), copyPtr(sp.KeepaliveTime), copyPtr(sp.ConnectTime)
	o.Password, o.BFDProfile, o.EnableGracefulRestart = sp.Password, sp.BFDProfile, sp.EnableGracefulRestart
	o.NodeSelectors, _ = c.selectors(s, "spec.nodeSelectors", sp.NodeSelectors)
	it := item[v1beta1.BGPPeer]{src: s}

	ibgp := sp.DynamicASN == "" && sp.ASN != 0 && sp.ASN == sp.MyASN
	switch {
	case sp.EBGPMultiHop && ibgp:
		// Pharos refuses it on iBGP; FRR does not apply it there either.
		c.add(s.problem(Warning, "spec.ebgpMultiHop", "applies to eBGP only and this peer is iBGP (peerASN = myASN), where it had no effect; removed"))
	default:
		o.EBGPMultiHop = sp.EBGPMultiHop
	}
	if o.EBGPMultiHop && sp.BFDProfile != "" {
		c.add(s.problem(Error, "spec.bfdProfile", "BFD on a multi-hop session: Pharos's BFD is single-hop (RFC 5881), so a router more than one hop away gets no BFD and the session relies on its hold time; peer with a directly connected router to keep BFD"))
	}

	// MetalLB carries only the session's own address family unless
	// dualStackAddressFamily is set (its disableMP is a deprecated no-op
	// since that became the default). Pharos's default is the opposite,
	// multiprotocol, so the MetalLB default is written as disableMP.
	o.DisableMP = !sp.DualStackAddressFamily
	if sp.DisableMP && sp.DualStackAddressFamily {
		c.add(s.problem(Warning, "spec.disableMP", "MetalLB ignores disableMP next to dualStackAddressFamily (both families are carried); removed"))
	}

	if sp.PasswordSecret.Name != "" {
		from := sp.PasswordSecret.Namespace
		if from == "" {
			from = s.Namespace
		}
		o.PasswordSecret = &corev1.SecretReference{Name: sp.PasswordSecret.Name, Namespace: c.opts.Namespace}
		c.add(s.problem(Warning, "spec.passwordSecret", "Pharos's speakers read BGP password Secrets in their own namespace only: copy Secret %s (type kubernetes.io/basic-auth, key password) to namespace %s and list %q in the chart value speaker.bgpPasswordSecrets, or the session will not authenticate",
			objectName(from, sp.PasswordSecret.Name), c.opts.Namespace, sp.PasswordSecret.Name))
	}
	if sp.LocalASN != 0 {
		c.add(s.problem(Error, "spec.localASN", "Pharos has no local-as: converted without it, the router sees myASN %d instead of %d. Make the router expect %d, or set myASN to %d if every session of these nodes may use it", sp.MyASN, sp.LocalASN, sp.MyASN, sp.LocalASN))
	}
	if sp.VRFName != "" {
		c.add(s.problem(Error, "spec.vrf", "Pharos peers from the nodes' default VRF only: converted without vrf %q, the session is opened through the main routing table, and the Services' addresses are announced there", sp.VRFName))
	}
	if sp.Interface != "" {
		c.add(s.problem(Error, "spec.interface", "unnumbered BGP (peering over interface %q without an address) is not supported by Pharos; set peerAddress to the router's address on that link. Left out", sp.Interface))
		it.fatal = true
	}
	it.obj = out
	return it
}

// serviceAnnotations are the MetalLB Service annotations Pharos has under
// pharos.io with the same name. Pharos reads the MetalLB spellings too
// (v1beta1.AnnotationAliasPrefixes) and warns about them; the conversion
// writes its own so that the warnings stop and MetalLB's names can go.
var serviceAnnotations = map[string]string{
	"address-pool":    v1beta1.AnnotationAddressPool,
	"loadBalancerIPs": v1beta1.AnnotationLoadBalancerIPs,
	"allow-shared-ip": v1beta1.AnnotationAllowSharedIP,
}

// allocatedFromPool is what MetalLB's controller writes on a Service;
// Pharos's controller writes its own (v1beta1.AnnotationAllocatedFromPool).
const allocatedFromPool = "ip-allocated-from-pool"

// service rewrites a Service's MetalLB annotations; ok is false when it has
// none, and so nothing to change.
func (c *converter) service(s *Source, in *corev1.Service) (corev1.Service, bool) {
	var metallb []string
	for k := range in.Annotations {
		for _, p := range v1beta1.AnnotationAliasPrefixes {
			if strings.HasPrefix(k, p) {
				metallb = append(metallb, k)
			}
		}
	}
	if len(metallb) == 0 {
		return corev1.Service{}, false
	}
	sort.Strings(metallb)
	out := corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, Spec: *in.Spec.DeepCopy()}
	out.Name, out.Namespace = in.Name, in.Namespace
	out.Labels = in.DeepCopy().Labels
	out.Annotations = map[string]string{}
	for k, v := range in.Annotations {
		if k != lastApplied {
			out.Annotations[k] = v
		}
	}
	field := func(k string) string { return "metadata.annotations[" + k + "]" }
	// The preferred spelling first: MetalLB reads metallb.io/ before
	// metallb.universe.tf/ (AnnotationAliasPrefixes is in that order).
	done := map[string]bool{}
	for _, k := range metallb {
		var name string
		for _, p := range v1beta1.AnnotationAliasPrefixes {
			if n, ok := strings.CutPrefix(k, p); ok {
				name = n
				break
			}
		}
		target, known := serviceAnnotations[name]
		switch {
		case name == allocatedFromPool:
			delete(out.Annotations, k)
			continue
		case !known:
			c.add(s.problem(Warning, field(k), "not an annotation MetalLB reads (a typo?), so it had no effect; left as is"))
			continue
		case done[name]:
			continue
		}
		done[name] = true
		var used string
		var usedKey string
		for _, p := range v1beta1.AnnotationAliasPrefixes {
			if v, ok := in.Annotations[p+name]; ok {
				if usedKey == "" {
					used, usedKey = v, p+name
				} else if v != used {
					c.add(s.problem(Warning, field(p+name), "MetalLB used %s (%q) and ignored this one (%q); removed", usedKey, used, v))
				}
				delete(out.Annotations, p+name)
			}
		}
		if cur, ok := in.Annotations[target]; ok && cur != used {
			c.add(s.problem(Error, field(usedKey), "%s is already set to %q, which Pharos reads instead of MetalLB's %q: keep one value in %s (the MetalLB annotation is removed)", target, cur, used, target))
			continue
		}
		out.Annotations[target] = used
	}
	if in.Spec.Type == corev1.ServiceTypeLoadBalancer && in.Spec.LoadBalancerClass != nil {
		c.add(s.problem(Warning, "spec.loadBalancerClass", "Pharos handles this Service only if its controller runs with --lb-class=%s (the chart value loadBalancerClass)", *in.Spec.LoadBalancerClass))
	}
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	return out, true
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
