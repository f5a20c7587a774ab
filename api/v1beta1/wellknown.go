package v1beta1

import "strings"

// The wire contract between Pharos's binaries, its chart and its users:
// every annotation, label, condition type and reason that more than one of
// them reads or writes. It lives here, in the API package, so that no
// binary imports another binary's package for a constant.

// Service annotations that users set. Each also has metallb.io/ and
// metallb.universe.tf/ aliases with the same name after the prefix, so that
// MetalLB users can migrate unchanged (see AnnotationAliasPrefixes).
const (
	// AnnotationLoadBalancerIPs requests addresses, comma-separated, at most
	// one per family.
	AnnotationLoadBalancerIPs = "pharos.io/loadBalancerIPs"
	// AnnotationAddressPool requests a pool by name.
	AnnotationAddressPool = "pharos.io/address-pool"
	// AnnotationAllowSharedIP is the sharing key: Services with the same
	// key may share an address.
	AnnotationAllowSharedIP = "pharos.io/allow-shared-ip"
	// AnnotationReturnToPreferred asks that an address move back to its
	// preferred node when that node returns, at the cost of a second move.
	AnnotationReturnToPreferred = "pharos.io/l2-return-to-preferred-node"
)

// AnnotationPrefix is the prefix of Pharos's own annotations.
const AnnotationPrefix = "pharos.io/"

// AnnotationAliasPrefixes are MetalLB's prefixes, accepted in place of
// AnnotationPrefix on the user-set annotations.
var AnnotationAliasPrefixes = []string{"metallb.io/", "metallb.universe.tf/"}

// AnnotationAllocatedFromPool is written by the controller on every Service
// that has addresses: the name of the pool they come from. It is the one
// answer to "which pool owns this address": the speaker and the
// advertisement checks read it, and never rebuild the pool model on their
// own (which, without the controller's history, could disagree with it).
const AnnotationAllocatedFromPool = "pharos.io/ip-allocated-from-pool"

// LabelExcludeFromLB is Kubernetes' well-known node label: a node that
// carries it never announces a load-balancer address.
const LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// Service condition types.
const (
	// ConditionIPAllocated says whether the Service has its addresses, and
	// if not, why (reasons: the allocator's, and ReasonServiceLBConflict).
	ConditionIPAllocated = "pharos.io/IPAllocated"
	// ConditionAnnounced says which nodes announce the Service's addresses,
	// and how, or why none does.
	ConditionAnnounced = "pharos.io/Announced"
)

// Reasons of the Announced condition besides the election's own (Elected's
// absence is worded by internal/election's reasons: NoEndpoints,
// NoMatchingAdvertisement, InterfaceDown, NoEligibleNode).
const (
	// ReasonAnnounced: every address of the Service is announced.
	ReasonAnnounced = "Announced"
	// ReasonSplitBrain: another station answers for an address this node
	// announces.
	ReasonSplitBrain = "SplitBrain"
	// ReasonAnnounceFailed: the elected node could not announce (for
	// example, its interface vanished); the message says why.
	ReasonAnnounceFailed = "AnnounceFailed"
)

// ReasonInternalError is the IPAllocated reason when the allocator fails in
// a way it should not (a bug): the message carries the error.
const ReasonInternalError = "InternalError"

// ReasonServiceLBConflict is the IPAllocated reason, and the Warning
// event's, while K3s ServiceLB also handles the Service.
const ReasonServiceLBConflict = "ServiceLBConflict"

// ConditionValid is the IPAddressPool condition that says whether its spec
// is usable.
const ConditionValid = "Valid"

// Forwarding: who carries a Service's traffic from the node that receives
// it to the backends. The cluster's default is the --forwarding flag that
// the chart gives the controller and the speakers alike (value
// forwarding.mode); a Service may override it with AnnotationForwarding.
const (
	// AnnotationForwarding overrides the cluster's forwarding mode for one
	// Service: ForwardingKubeProxy, ForwardingNodePort or
	// ForwardingDirect.
	AnnotationForwarding = "pharos.io/forwarding"
	// ForwardingKubeProxy leaves the traffic to kube-proxy: the status says
	// ipMode VIP (Kubernetes' default), and kube-proxy on every node
	// handles the address.
	ForwardingKubeProxy = "kube-proxy"
	// ForwardingDirect: the speakers on the nodes that receive the address
	// DNAT it straight to the Service's ready endpoints (nftables, table
	// inet pharos), for clusters without kube-proxy, and with the client's
	// address kept for externalTrafficPolicy Local. The status says ipMode
	// Proxy, so that kube-proxy does not short-circuit the address inside
	// the cluster.
	ForwardingDirect = "direct"
	// ForwardingNodePort: the speakers on the nodes that receive the
	// address hand it to kube-proxy's NodePort of the Service port on the
	// same node (a stateless rewrite before connection tracking, undone
	// on the replies), so kube-proxy chooses the endpoint while Pharos
	// owns the address: ipMode Proxy, source ranges enforced by the
	// speakers. Needs kube-proxy and the Service's NodePorts.
	ForwardingNodePort = "nodeport"
)

// ForwardingModes are the valid values of the --forwarding flag and of
// AnnotationForwarding.
var ForwardingModes = []string{ForwardingKubeProxy, ForwardingNodePort, ForwardingDirect}

// ForwardingOf returns a Service's forwarding mode, given its annotations
// and the cluster's default: the annotation when it names a valid mode,
// else the default. ok is false when the annotation is set to something
// else, for the caller to report.
func ForwardingOf(annotations map[string]string, clusterDefault string) (mode string, ok bool) {
	v, set := annotations[AnnotationForwarding]
	switch {
	case !set:
		return clusterDefault, true
	case v == ForwardingKubeProxy || v == ForwardingNodePort || v == ForwardingDirect:
		return v, true
	}
	return clusterDefault, false
}

// ReasonInvalidForwarding is the reason of the controller's Warning event
// about a Service whose AnnotationForwarding names no mode in
// ForwardingModes. The Service keeps its addresses, with the cluster's
// default mode, and its IPAllocated condition's message says the same
// until the annotation is fixed.
const ReasonInvalidForwarding = "InvalidForwarding"

// Annotation returns the value of a pharos.io annotation (key) or, when
// that is not set, of one of its MetalLB aliases (AnnotationAliasPrefixes);
// used names the key that was found.
func Annotation(annotations map[string]string, key string) (value, used string, ok bool) {
	if v, ok := annotations[key]; ok {
		return v, key, true
	}
	name := strings.TrimPrefix(key, AnnotationPrefix)
	for _, p := range AnnotationAliasPrefixes {
		if v, ok := annotations[p+name]; ok {
			return v, p + name, true
		}
	}
	return "", "", false
}

// FinalizerPoolInUse is the finalizer that the controller puts on an
// IPAddressPool while Services hold addresses from it, and takes off when
// the last one releases them: deleting a pool in use leaves it Terminating,
// with its Services keeping their addresses, until then, as Kubernetes'
// ServiceCIDRs do. Removing it by hand forces the deletion: the Services
// then lose the pool's addresses at once.
const FinalizerPoolInUse = "pharos.io/pool-in-use-protection"

// ConditionDraining is the IPAddressPool condition that says the pool keeps
// addresses for Services that its deletion or its spec no longer provides:
// True, with ReasonPoolTerminating or ReasonAddressesOutsidePool, and a
// message naming the Services and what to do; absent otherwise. No new
// Service gets an address that the pool is draining.
const ConditionDraining = "pharos.io/Draining"

// Reasons of ConditionDraining, also the reasons of the Warning events
// about the pool.
const (
	// ReasonPoolTerminating: the pool is deleted, but Services still hold
	// its addresses; it stays Terminating (FinalizerPoolInUse) until they
	// release them.
	ReasonPoolTerminating = "Terminating"
	// ReasonAddressesOutsidePool: Services keep addresses that the pool's
	// current spec.addresses (or avoidBuggyIPs) no longer includes; they
	// are not given to anyone else until released.
	ReasonAddressesOutsidePool = "AddressesOutsidePool"
)
