package allocation

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/pharos-lb/pharos/api/v1beta1"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// K3s ServiceLB (klipper-lb) serves every LoadBalancer Service without
// spec.loadBalancerClass by creating a DaemonSet svclb-<name>-<uid[:8]> in
// its namespace (kube-system unless K3s's lbNamespace says otherwise),
// labelled with the Service's name and namespace, and writes node addresses
// into status.loadBalancer.ingress once its pods are Ready. While such a
// DaemonSet exists, ServiceLB owns that status; Pharos would only fight it.
//
// Only DaemonSets are watched, not their pods: ServiceLB's controller, not
// its pods, writes the status, and it (re)creates the DaemonSet on every
// sync of the Service, so the DaemonSet exists exactly while ServiceLB is
// active for the Service. Pods left over from a deleted DaemonSet do not
// write anything, and watching them would only cost memory and RBAC.
//
// K3s builds the label prefix from its program name, so RKE2 (with
// --enable-servicelb) labels its DaemonSets svccontroller.rke2.cattle.io/*.
const (
	ServiceLBLabelName      = "svccontroller.k3s.cattle.io/svcname"
	ServiceLBLabelNamespace = "svccontroller.k3s.cattle.io/svcnamespace"
)

// serviceLBPrefixes are the label prefixes of K3s and RKE2.
var serviceLBPrefixes = []string{"svccontroller.k3s.cattle.io/", "svccontroller.rke2.cattle.io/"}

// exampleLoadBalancerClass is the class that the conflict message suggests.
const exampleLoadBalancerClass = "pharos.io/lb"

// serviceLBOwner returns the Service that a ServiceLB object's labels name,
// with K3s's or RKE2's prefix.
func serviceLBOwner(l map[string]string) (types.NamespacedName, bool) {
	for _, p := range serviceLBPrefixes {
		nn := types.NamespacedName{Namespace: l[p+"svcnamespace"], Name: l[p+"svcname"]}
		if nn.Namespace != "" && nn.Name != "" {
			return nn, true
		}
	}
	return types.NamespacedName{}, false
}

// activeServiceLB returns "namespace/name" of the objects that show
// ServiceLB handling the Service, sorted. Objects being deleted are gone
// for this purpose: K3s deletes them when ServiceLB is disabled.
func activeServiceLB(objs []metav1.PartialObjectMetadata, svc types.NamespacedName) []string {
	var out []string
	for i := range objs {
		o := &objs[i]
		if owner, ok := serviceLBOwner(o.Labels); !ok || owner != svc || o.DeletionTimestamp != nil {
			continue
		}
		out = append(out, o.Namespace+"/"+o.Name)
	}
	sort.Strings(out)
	return out
}

// serviceLBCondition is the IPAllocated condition of a Service that
// ServiceLB also handles; reserved is what Pharos keeps for it meanwhile.
func serviceLBCondition(daemonSets []string, reserved []netip.Addr, generation int64) metav1.Condition {
	kept := "Pharos has no address reserved for it"
	if len(reserved) > 0 {
		kept = "Pharos keeps " + joinIPs(reserved) + " reserved for it"
	}
	return metav1.Condition{
		Type:               v1beta1.ConditionIPAllocated,
		Status:             metav1.ConditionFalse,
		Reason:             v1beta1.ReasonServiceLBConflict,
		ObservedGeneration: generation,
		Message: fmt.Sprintf("K3s ServiceLB also handles this Service (DaemonSet %s), so Pharos does not write "+
			"status.loadBalancer.ingress; %s. Either start K3s with --disable=servicelb (Pharos then takes over), "+
			"or run Pharos with --lb-class=%s and create this Service with spec.loadBalancerClass: %s "+
			"(the class cannot be added to an existing LoadBalancer Service).",
			strings.Join(daemonSets, ", "), kept, exampleLoadBalancerClass, exampleLoadBalancerClass),
	}
}

// newDaemonSetMeta is the metadata-only object that the ServiceLB cache
// watches: the labels are all that is needed.
func newDaemonSetMeta() *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
	return o
}

// serviceLBRequests maps a ServiceLB DaemonSet to the Service it names, on
// creation, change and deletion alike.
func serviceLBRequests(_ context.Context, o client.Object) []reconcile.Request {
	if nn, ok := serviceLBOwner(o.GetLabels()); ok {
		return []reconcile.Request{{NamespacedName: nn}}
	}
	return nil
}
