package inspect

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// Explanation is `kubectl pharos explain svc/NAME`: why a Service is
// pending, or how it is served, in sections of findings.
type Explanation struct {
	Service string `json:"service"`
	// Summary is one line: how the Service is served, or what stops it
	// and the fix.
	Summary  string    `json:"summary"`
	Sections []Section `json:"sections"`
}

// Section is one step of the path from Service to traffic.
type Section struct {
	Title    string    `json:"title"`
	Findings []Finding `json:"findings"`
}

// Finding is one fact about the step: OK, or a problem with its fix.
type Finding struct {
	// Subject is what the finding is about: a pool, a node, a peer.
	Subject string `json:"subject,omitempty"`
	OK      bool   `json:"ok"`
	Text    string `json:"text"`
	Fix     string `json:"fix,omitempty"`
}

// Explain explains the Service namespace/name.
func Explain(c *Cluster, namespace, name string) (*Explanation, error) {
	svc := c.service(namespace, name)
	if svc == nil {
		return nil, fmt.Errorf("service %s/%s not found", namespace, name)
	}
	e := &Explanation{Service: namespace + "/" + name}
	sec := Section{Title: "Service"}
	switch {
	case svc.Spec.Type != corev1.ServiceTypeLoadBalancer:
		sec.Findings = append(sec.Findings, Finding{Text: fmt.Sprintf("type is %s; Pharos serves only LoadBalancer Services", svc.Spec.Type),
			Fix: "set spec.type: LoadBalancer"})
		e.Sections = append(e.Sections, sec)
		e.Summary = "not served: " + sec.Findings[0].Text + "; " + sec.Findings[0].Fix
		return e, nil
	case !c.handled(svc):
		class := "(none)"
		if svc.Spec.LoadBalancerClass != nil {
			class = *svc.Spec.LoadBalancerClass
		}
		want := "no loadBalancerClass"
		if c.LoadBalancerClass != "" {
			want = "loadBalancerClass " + c.LoadBalancerClass
		}
		sec.Findings = append(sec.Findings, Finding{Text: fmt.Sprintf("spec.loadBalancerClass is %s; Pharos handles Services with %s", class, want),
			Fix: "another load balancer implementation serves this class; to use Pharos, recreate the Service with the class Pharos handles (spec.loadBalancerClass cannot be changed), or pass --lb-class if the controller runs with one"})
		e.Sections = append(e.Sections, sec)
		e.Summary = "not served by Pharos: " + sec.Findings[0].Text
		return e, nil
	}
	sec.Findings = append(sec.Findings, Finding{OK: true, Text: "type LoadBalancer, handled by Pharos"})
	st := c.state()
	sec.Findings = append(sec.Findings, endpointFindings(svc, st)...)
	e.Sections = append(e.Sections, sec, poolSection(c, svc), allocationSection(svc))

	owners := L2Owners(svc)
	for _, ip := range addresses(svc) {
		a := st.Lookup(ip)
		if a == nil {
			continue
		}
		l2 := layer2Section(c, a, owners[ip], interfacesDown(svc, ip))
		bgp := bgpSection(c, st, a)
		if l2 == nil && bgp == nil {
			e.Sections = append(e.Sections, Section{Title: "Announcement of " + ip.String(), Findings: []Finding{{
				Text: fmt.Sprintf("no L2Advertisement or BGPAdvertisement selects pool %s: the address is assigned but nobody announces it", a.Pool),
				Fix:  fmt.Sprintf("create an L2Advertisement or a BGPAdvertisement that lists %s in spec.ipAddressPools", a.Pool)}}})
		}
		if l2 != nil {
			e.Sections = append(e.Sections, *l2)
		}
		if bgp != nil {
			e.Sections = append(e.Sections, *bgp)
		}
	}
	if len(svc.Status.LoadBalancer.Ingress) > 0 {
		e.Sections = append(e.Sections, forwardingSection(svc), reportSection(svc))
	}
	e.Summary = summary(svc, e)
	return e, nil
}

// summary is the explanation's first line.
func summary(svc *corev1.Service, e *Explanation) string {
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		for _, s := range e.Sections {
			if s.Title != "Allocation" {
				continue
			}
			for _, f := range s.Findings {
				if !f.OK {
					return "pending: " + f.Text + fixSuffix(f.Fix)
				}
			}
		}
		return "pending"
	}
	var addrs []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		addrs = append(addrs, ing.IP)
	}
	if c := condition(svc, v1beta1.ConditionAnnounced); c != nil && c.Status == metav1.ConditionTrue {
		return "served: " + c.Message
	}
	for _, s := range e.Sections {
		for _, f := range s.Findings {
			if !f.OK && s.Title != "Pools" && !strings.HasPrefix(s.Title, "Layer 2 election") {
				return fmt.Sprintf("%s assigned but not served: %s%s", strings.Join(addrs, ", "), f.Text, fixSuffix(f.Fix))
			}
		}
	}
	if c := condition(svc, v1beta1.ConditionAnnounced); c != nil {
		return fmt.Sprintf("%s assigned but not announced: %s", strings.Join(addrs, ", "), c.Message)
	}
	return fmt.Sprintf("%s assigned; no speaker has reported on it yet (no Announced condition): are the speakers running?", strings.Join(addrs, ", "))
}

func fixSuffix(fix string) string {
	if fix == "" {
		return ""
	}
	return "; fix: " + fix
}

// endpointFindings counts the Service's serving endpoints.
func endpointFindings(svc *corev1.Service, st *speaker.State) []Finding {
	if svc.Spec.Selector == nil && len(st.EndpointSlices(svc)) == 0 {
		return []Finding{{Text: "no selector and no EndpointSlices: nobody announces an address without a serving endpoint", Fix: "create EndpointSlices for the Service, or give it a selector"}}
	}
	ready, nodes := 0, map[string]bool{}
	for _, es := range st.EndpointSlices(svc) {
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready++
				if ep.NodeName != nil {
					nodes[*ep.NodeName] = true
				}
			}
		}
	}
	if ready == 0 {
		return []Finding{{Text: "no ready endpoint: nobody announces an address whose Services have no serving endpoint",
			Fix: "check the pods the selector picks (kubectl get pods -l ...) and their readiness probes"}}
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return []Finding{{OK: true, Text: fmt.Sprintf("%d ready endpoint(s), on node(s) %s; externalTrafficPolicy %s", ready, dash(strings.Join(names, ", ")), policy(svc))}}
}

func policy(svc *corev1.Service) string {
	if svc.Spec.ExternalTrafficPolicy == "" {
		return string(corev1.ServiceExternalTrafficPolicyCluster)
	}
	return string(svc.Spec.ExternalTrafficPolicy)
}

// request is what the Service asks of the allocator.
type request struct {
	pool     string
	ips      []netip.Addr
	families []config.Family
	info     config.ServiceInfo
}

func serviceRequest(c *Cluster, svc *corev1.Service) request {
	r := request{info: config.ServiceInfo{Namespace: svc.Namespace, Labels: svc.Labels}}
	for i := range c.Namespaces {
		if c.Namespaces[i].Name == svc.Namespace {
			r.info.NamespaceLabels = c.Namespaces[i].Labels
		}
	}
	r.pool, _, _ = v1beta1.Annotation(svc.Annotations, v1beta1.AnnotationAddressPool)
	ips, _, _ := v1beta1.Annotation(svc.Annotations, v1beta1.AnnotationLoadBalancerIPs)
	if ips == "" {
		ips = svc.Spec.LoadBalancerIP
	}
	for _, s := range strings.Split(ips, ",") {
		if ip, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			r.ips = append(r.ips, ip)
		}
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			r.families = append(r.families, config.IPv6)
		} else {
			r.families = append(r.families, config.IPv4)
		}
	}
	if len(r.families) == 0 {
		r.families = []config.Family{config.IPv4}
	}
	return r
}

// poolSection says, for each pool, whether it can give the Service its
// addresses, and why not.
func poolSection(c *Cluster, svc *corev1.Service) Section {
	sec := Section{Title: "Pools"}
	req := serviceRequest(c, svc)
	from := svc.Annotations[v1beta1.AnnotationAllocatedFromPool]
	if len(c.Pools) == 0 {
		sec.Findings = append(sec.Findings, Finding{Text: "no IPAddressPool exists", Fix: "create an IPAddressPool (and an L2Advertisement or BGPAdvertisement for it)"})
		return sec
	}
	if req.pool != "" && !hasPool(c, req.pool) {
		sec.Findings = append(sec.Findings, Finding{Subject: req.pool, Text: fmt.Sprintf("the Service asks for pool %s (pharos.io/address-pool), which does not exist", req.pool),
			Fix: "create that pool, or correct or remove the annotation"})
	}
	for i := range c.Pools {
		sec.Findings = append(sec.Findings, poolFinding(&c.Pools[i], req, from))
	}
	return sec
}

func hasPool(c *Cluster, name string) bool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return true
		}
	}
	return false
}

// poolFinding says whether one pool can serve the request.
func poolFinding(obj *v1beta1.IPAddressPool, req request, from string) Finding {
	f := Finding{Subject: obj.Name}
	if cond := meta.FindStatusCondition(obj.Status.Conditions, v1beta1.ConditionValid); cond != nil && cond.Status == metav1.ConditionFalse {
		f.Text, f.Fix = "invalid, so unused: "+cond.Message, "fix the pool's spec (kubectl pharos validate -f FILE shows every error)"
		return f
	}
	pool, errs := config.ParsePool(obj)
	if len(errs) > 0 {
		f.Text, f.Fix = "invalid, so unused: "+errs.ToAggregate().Error(), "fix the pool's spec"
		return f
	}
	if obj.Name == from {
		f.OK, f.Text = true, "the Service's addresses come from this pool"
		return f
	}
	switch {
	case req.pool != "" && req.pool != obj.Name:
		f.Text = fmt.Sprintf("not the pool the Service asks for (pharos.io/address-pool: %s)", req.pool)
		return f
	case req.pool == "" && !pool.AutoAssign:
		f.Text, f.Fix = "autoAssign is false: only Services that name it get its addresses", fmt.Sprintf("annotate the Service pharos.io/address-pool: %s, or set spec.autoAssign: true", obj.Name)
		return f
	case !pool.Matches(req.info):
		f.Text, f.Fix = fmt.Sprintf("spec.serviceAllocation does not select this Service (namespace %s, its labels)", req.info.Namespace),
			"add the namespace or a matching selector to the pool's spec.serviceAllocation, or label the Service/namespace to match"
		return f
	}
	v4, v6 := pool.Families()
	for _, fam := range req.families {
		if (fam == config.IPv4 && !v4) || (fam == config.IPv6 && !v6) {
			f.Text, f.Fix = fmt.Sprintf("holds no %s addresses, and the Service asks for %s", fam, fam), fmt.Sprintf("add a %s range to spec.addresses, or change the Service's spec.ipFamilies", fam)
			return f
		}
	}
	for _, ip := range req.ips {
		if !pool.Contains(ip) {
			f.Text, f.Fix = fmt.Sprintf("does not contain the requested address %s", ip), "request an address inside spec.addresses, or add it to the pool"
			return f
		}
	}
	for _, fam := range req.families {
		free := obj.Status.AvailableIPv4
		if fam == config.IPv6 {
			free = obj.Status.AvailableIPv6
		}
		if free == 0 && len(req.ips) == 0 {
			f.Text, f.Fix = fmt.Sprintf("exhausted: no %s address free", fam), "add addresses to spec.addresses, or delete Services that hold them"
			return f
		}
	}
	f.OK, f.Text = true, "matches the Service"
	return f
}

// allocationSection is the controller's decision, from IPAllocated.
func allocationSection(svc *corev1.Service) Section {
	sec := Section{Title: "Allocation"}
	cond := condition(svc, v1beta1.ConditionIPAllocated)
	if len(svc.Status.LoadBalancer.Ingress) > 0 {
		var addrs []string
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			addrs = append(addrs, ing.IP)
		}
		text := fmt.Sprintf("assigned %s from pool %s", strings.Join(addrs, ", "), dash(svc.Annotations[v1beta1.AnnotationAllocatedFromPool]))
		if cond != nil && cond.Message != "" {
			text += " (" + cond.Message + ")"
		}
		sec.Findings = append(sec.Findings, Finding{OK: true, Text: text})
		return sec
	}
	if cond == nil {
		sec.Findings = append(sec.Findings, Finding{Text: "no address and no IPAllocated condition: the controller has not handled the Service",
			Fix: "check that the Pharos controller runs and has a leader (kubectl -n pharos-system get pods,leases)"})
		return sec
	}
	sec.Findings = append(sec.Findings, Finding{Text: fmt.Sprintf("%s: %s", cond.Reason, cond.Message), Fix: allocationFix(cond.Reason)})
	return sec
}

// allocationFix is the fix for the allocator's refusals.
func allocationFix(reason string) string {
	switch reason {
	case "NoMatchingPool":
		return "see Pools above: create a pool that matches, or change the Service's request"
	case "PoolExhausted":
		return "add addresses to the pool's spec.addresses, or free some"
	case "RequestedIPUnavailable":
		return "request a free address inside a pool that matches, or remove the request"
	case "SharingConflict":
		return "give the Services sharing an address the same pharos.io/allow-shared-ip key and non-clashing ports, or request another address"
	case "InvalidRequest":
		return "correct the Service's pharos.io annotations as the message says"
	case v1beta1.ReasonServiceLBConflict:
		return "disable K3s ServiceLB (--disable=servicelb) or give Pharos a loadBalancerClass"
	case v1beta1.ReasonInternalError:
		return "a bug in the controller, not in the Service: report it with the message and the controller's log (kubectl -n pharos-system logs -l app.kubernetes.io/component=controller); restarting the controller rebuilds its state from the pools and the Services' status"
	}
	return ""
}

// interfacesDown reports whether the speakers say, in the Service's
// Announced condition, that no node can announce ip because no alive
// selected node has an announcing interface up. Only the speakers know
// which interfaces are up: the election computed here takes every
// interface to be.
func interfacesDown(svc *corev1.Service, ip netip.Addr) bool {
	cond := condition(svc, v1beta1.ConditionAnnounced)
	if cond == nil || cond.Status != metav1.ConditionFalse {
		return false
	}
	part := ip.String() + " not announced: " + election.InterfaceDownMessage
	return strings.HasPrefix(cond.Message, part) || strings.Contains(cond.Message, "; "+part)
}

// layer2Section explains the layer-2 election of one address; nil when
// no L2Advertisement selects its pool. down says the speakers report no
// candidate with an announcing interface up (interfacesDown).
func layer2Section(c *Cluster, a *speaker.Address, owner Owner, down bool) *Section {
	r := a.Election
	if r.Winner == "" && r.Reason == election.NoMatchingAdvertisement && len(r.Excluded) == 0 {
		return nil
	}
	sec := &Section{Title: "Layer 2 election for " + a.IP.String()}
	if down {
		// Every alive selected node is down by the speakers' account, so
		// every candidate computed here is.
		for _, n := range r.Candidates {
			sec.Findings = append(sec.Findings, Finding{Subject: n,
				Text: "not a candidate: announcing interface down (the speakers report that " + election.InterfaceDownMessage + "; the Announced condition below names each node's interfaces)",
				Fix:  "bring the interface up (ip link set IFACE up on " + n + "), or change the L2Advertisement's spec.interfaces"})
		}
		for _, x := range r.Excluded {
			sec.Findings = append(sec.Findings, exclusionFinding(c, a, x))
		}
		sec.Findings = append(sec.Findings, Finding{Text: fmt.Sprintf("no node announces it (%s)", election.InterfaceDown), Fix: "fix one of the nodes above"})
		return sec
	}
	rank := map[string]int{}
	for i, n := range r.Candidates {
		rank[n] = i + 1
	}
	for _, n := range r.Candidates {
		f := Finding{Subject: n, OK: true}
		if n == r.Winner {
			f.Text = "announces it"
			if iface := interfaceName(r.Interfaces, owner, n); iface != "" {
				f.Text += " on " + iface
			}
			if r.KeptOwner {
				f.Text += " (kept as the current owner although another candidate ranks first)"
			}
		} else {
			f.Text = fmt.Sprintf("candidate, standby (rank %d): takes over if the owner fails", rank[n])
		}
		sec.Findings = append(sec.Findings, f)
	}
	for _, x := range r.Excluded {
		sec.Findings = append(sec.Findings, exclusionFinding(c, a, x))
	}
	if r.Winner == "" {
		sec.Findings = append(sec.Findings, Finding{Text: fmt.Sprintf("no node announces it (%s)", r.Reason), Fix: "fix one of the nodes above"})
	}
	return sec
}

// exclusionFinding says why a node is not a candidate, one fix per fault.
func exclusionFinding(c *Cluster, a *speaker.Address, x election.Exclusion) Finding {
	var why, fixes []string
	if x.Faults&election.FaultNotAlive != 0 {
		why = append(why, "no live speaker on the node (or it is draining)")
		fixes = append(fixes, fmt.Sprintf("check the speaker pod on %s (kubectl -n pharos-system get pods -o wide)", x.Node))
	}
	if x.Faults&election.FaultNotSelected != 0 {
		why = append(why, fmt.Sprintf("no L2Advertisement for pool %s selects the node", a.Pool))
		fixes = append(fixes, "widen the L2Advertisement's spec.nodeSelectors to include it")
	}
	if x.Faults&election.FaultNotReady != 0 {
		n := c.node(x.Node)
		switch {
		case n != nil && n.Spec.Unschedulable:
			why = append(why, "cordoned")
			fixes = append(fixes, "kubectl uncordon "+x.Node+" when maintenance is over")
		case n != nil && nodeCondition(n, corev1.NodeNetworkUnavailable) == corev1.ConditionTrue:
			why = append(why, "NetworkUnavailable is True")
			fixes = append(fixes, "fix the node's pod network (CNI)")
		default:
			why = append(why, "not Ready")
			fixes = append(fixes, "fix the node or its kubelet (kubectl describe node "+x.Node+")")
		}
	}
	if x.Faults&election.FaultExcluded != 0 {
		why = append(why, "labelled "+v1beta1.LabelExcludeFromLB)
		fixes = append(fixes, fmt.Sprintf("kubectl label node %s %s- to let it announce", x.Node, v1beta1.LabelExcludeFromLB))
	}
	if x.Faults&election.FaultInterfaceDown != 0 {
		why = append(why, "announcing interface down: "+strings.Join(x.DownInterfaces, ", "))
		fixes = append(fixes, "bring the interface up, or change the L2Advertisement's spec.interfaces")
	}
	if x.Faults&election.FaultNoLocalEndpoint != 0 {
		why = append(why, "no ready local endpoint of "+strings.Join(x.Unserved, ", ")+" (externalTrafficPolicy Local)")
		fixes = append(fixes, "run a pod of the Service on this node, or use externalTrafficPolicy Cluster")
	}
	return Finding{Subject: x.Node, Text: "not a candidate: " + strings.Join(why, "; "), Fix: strings.Join(fixes, "; ")}
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// bgpSection explains the BGP side of one address; nil when no
// BGPAdvertisement selects it.
func bgpSection(c *Cluster, st *speaker.State, a *speaker.Address) *Section {
	if len(a.BGP.Advertisements) == 0 {
		return nil
	}
	sec := &Section{Title: "BGP for " + a.IP.String()}
	var advs []string
	for _, adv := range a.BGP.Advertisements {
		advs = append(advs, adv.Name)
	}
	sec.Findings = append(sec.Findings, Finding{OK: true, Text: "advertised by BGPAdvertisement " + strings.Join(advs, ", ")})
	if len(a.BGP.Nodes) == 0 {
		sec.Findings = append(sec.Findings, Finding{Text: "no node advertises it (none is eligible, selected by the advertisements' nodeSelectors and serving the Service)",
			Fix: "check the nodes' readiness and the advertisements' spec.nodeSelectors; for externalTrafficPolicy Local, the Service needs a ready endpoint on a peering node"})
		return sec
	}
	peers := map[string]bool{}
	for _, p := range a.BGP.Peers {
		peers[p] = true
	}
	sessions := map[string]v1beta1.BGPSessionStatus{}
	for i := range c.BGPNodeStatuses {
		ns := &c.BGPNodeStatuses[i]
		for _, s := range ns.Status.Sessions {
			sessions[ns.Name+"/"+s.Peer] = s
		}
	}
	for _, node := range a.BGP.Nodes {
		n := c.node(node)
		if n == nil {
			continue
		}
		for _, p := range st.BGP.PeersOf(n.Labels) {
			peer := p.Name
			if !peers[peer] {
				continue
			}
			s, ok := sessions[node+"/"+peer]
			f := Finding{Subject: node + " → " + peer}
			switch {
			case !ok:
				f.Text, f.Fix = "no session reported in BGPNodeStatus "+node, "check the speaker on "+node+" (kubectl get bgpnodestatus "+node+" -o yaml)"
			case s.State == "Established":
				f.OK, f.Text = true, fmt.Sprintf("session Established with %s, %d prefix(es) sent", s.PeerAddress, s.PrefixesSent)
				if s.BFDState != "" && s.BFDState != "Up" {
					f.OK, f.Text, f.Fix = false, f.Text+", BFD "+s.BFDState, "check BFD on the router (its profile must match the BFDProfile)"
				}
			default:
				f.Text = fmt.Sprintf("session %s with %s", s.State, s.PeerAddress)
				if s.LastError != "" {
					f.Text += ": " + s.LastError
				}
				f.Fix = "check the router's neighbor configuration for this node (address, ASN, password) and the BGPPeer's spec"
			}
			sec.Findings = append(sec.Findings, f)
		}
	}
	return sec
}

// forwardingSection names the forwarding mode.
func forwardingSection(svc *corev1.Service) Section {
	mode, ok := v1beta1.ForwardingOf(svc.Annotations, "")
	f := Finding{OK: true}
	switch {
	case !ok:
		f.OK, f.Text = false, fmt.Sprintf("%s is %q, not one of %s: the cluster's default mode is used", v1beta1.AnnotationForwarding, svc.Annotations[v1beta1.AnnotationForwarding], strings.Join(v1beta1.ForwardingModes, ", "))
		f.Fix = "correct or remove the annotation"
	case mode == "":
		f.Text = "the cluster's default mode (chart value forwarding.mode; kube-proxy unless set)"
	default:
		f.Text = "mode " + mode + " (pharos.io/forwarding)"
	}
	return Section{Title: "Forwarding", Findings: []Finding{f}}
}

// reportSection is the speakers' own account: the Announced condition.
func reportSection(svc *corev1.Service) Section {
	sec := Section{Title: "Speakers' report (Announced condition)"}
	c := condition(svc, v1beta1.ConditionAnnounced)
	if c == nil {
		sec.Findings = append(sec.Findings, Finding{Text: "no Announced condition yet", Fix: "check that the speakers run (kubectl -n pharos-system get ds)"})
		return sec
	}
	sec.Findings = append(sec.Findings, Finding{OK: c.Status == metav1.ConditionTrue && c.Reason == v1beta1.ReasonAnnounced,
		Text: fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)})
	return sec
}

// String renders the explanation as text.
func (e *Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Service %s: %s\n", e.Service, e.Summary)
	for _, s := range e.Sections {
		fmt.Fprintf(&b, "\n%s\n", s.Title)
		for _, f := range s.Findings {
			mark := "✗"
			if f.OK {
				mark = "✓"
			}
			subject := ""
			if f.Subject != "" {
				subject = f.Subject + ": "
			}
			fmt.Fprintf(&b, "  %s %s%s\n", mark, subject, f.Text)
			if f.Fix != "" {
				fmt.Fprintf(&b, "      fix: %s\n", f.Fix)
			}
		}
	}
	return b.String()
}
