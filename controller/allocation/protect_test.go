package allocation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// getPool returns the pool, or nil when it does not exist.
func getPool(t *testing.T, name string) *v1beta1.IPAddressPool {
	t.Helper()
	p := &v1beta1.IPAddressPool{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return p
}

// waitDraining waits until the pool's Draining condition has the reason
// and a message containing every part, and returns the pool.
func waitDraining(t *testing.T, name, reason string, parts ...string) *v1beta1.IPAddressPool {
	t.Helper()
	var p *v1beta1.IPAddressPool
	eventually(t, waitTime, func() string {
		if p = getPool(t, name); p == nil {
			return "pool " + name + " is gone"
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionDraining)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			return fmt.Sprintf("pool %s condition %s is %+v, want reason %s", name, v1beta1.ConditionDraining, c, reason)
		}
		for _, part := range parts {
			if !strings.Contains(c.Message, part) {
				return fmt.Sprintf("pool %s condition message %q lacks %q", name, c.Message, part)
			}
		}
		return ""
	})
	return p
}

// poolEvents returns the reasons and notes of the events about a pool
// (cluster-scoped objects' events are in the default namespace).
func poolEvents(t *testing.T, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(metav1.NamespaceDefault),
		client.MatchingFieldsSelector{Selector: fields.SelectorFromSet(fields.Set{"involvedObject.name": name, "involvedObject.kind": "IPAddressPool"})}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Type+" "+e.Reason+": "+e.Message)
	}
	return out
}

// holds checks that the Service still has exactly the address and pool
// annotation, allocated.
func holds(t *testing.T, ns, name, ip, pool string) string {
	t.Helper()
	s := getService(t, ns, name)
	c := meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated)
	switch {
	case ingressIPs(s) != ip:
		return fmt.Sprintf("%s/%s has %q, want %s kept; condition %+v", ns, name, ingressIPs(s), ip, c)
	case s.Annotations[v1beta1.AnnotationAllocatedFromPool] != pool:
		return fmt.Sprintf("%s/%s pool annotation %q, want %s", ns, name, s.Annotations[v1beta1.AnnotationAllocatedFromPool], pool)
	case c == nil || c.Status != metav1.ConditionTrue:
		return fmt.Sprintf("%s/%s condition %+v", ns, name, c)
	}
	return ""
}

func TestDeletingAPoolInUseKeepsItTerminatingUntilReleased(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "doomed", []string{"198.18.40.0/30"})
	createPool(t, "doomed-next", []string{"198.18.41.0/30"}, noAutoAssign)
	createPool(t, "unused", []string{"198.18.42.0/30"})
	startController(t, controllerOpts{})

	createService(t, ns, "web", annotate(v1beta1.AnnotationAddressPool, "doomed"))
	waitIPs(t, ns, "web", "198.18.40.0")
	eventually(t, waitTime, func() string {
		if p := getPool(t, "doomed"); !controllerutil.ContainsFinalizer(p, v1beta1.FinalizerPoolInUse) {
			return fmt.Sprintf("pool in use has finalizers %v", p.Finalizers)
		}
		return ""
	})
	// A pool nobody uses has no finalizer, and goes at once.
	if p := getPool(t, "unused"); len(p.Finalizers) != 0 {
		t.Fatalf("an unused pool has finalizers %v", p.Finalizers)
	}
	if err := k8s.Delete(context.Background(), getPool(t, "unused")); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTime, func() string {
		if getPool(t, "unused") != nil {
			return "the unused pool is still there"
		}
		return ""
	})

	if err := k8s.Delete(context.Background(), getPool(t, "doomed")); err != nil {
		t.Fatal(err)
	}
	p := waitDraining(t, "doomed", v1beta1.ReasonPoolTerminating, "1 Service", ns+"/web", "stays Terminating", "kubectl patch ipaddresspool doomed")
	if p.DeletionTimestamp == nil {
		t.Fatal("the pool is not Terminating")
	}
	eventually(t, waitTime, func() string {
		if evs := poolEvents(t, "doomed"); countEvents(evs, "Warning Terminating: the pool is being deleted, but 1 Service still holds its addresses: "+ns+"/web") != 1 {
			return fmt.Sprintf("pool events %q, want one Terminating warning", evs)
		}
		return ""
	})

	// Its condition says the pool is going and how to let it go.
	eventually(t, waitTime, func() string {
		var svc corev1.Service
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "web"}, &svc); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionIPAllocated)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, `assigned 198.18.40.0 from IPAddressPool "doomed"; the pool is being deleted`) ||
			!strings.Contains(c.Message, v1beta1.AnnotationAddressPool) {
			return fmt.Sprintf("IPAllocated %+v", c)
		}
		return ""
	})

	// The Service keeps its address, annotation and condition across
	// reconciles (touching it re-queues it).
	updateService(t, ns, "web", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "1"} })
	consistently(t, 2*time.Second, func() string { return holds(t, ns, "web", "198.18.40.0", "doomed") })
	updateService(t, ns, "web", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "2"} })

	// No new Service gets an address from it, by pool or by address.
	createService(t, ns, "asks-pool", annotate(v1beta1.AnnotationAddressPool, "doomed"))
	waitReason(t, ns, "asks-pool", "NoMatchingPool", `requested pool "doomed" is being deleted`)
	createService(t, ns, "asks-ip", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.40.1"))
	waitReason(t, ns, "asks-ip", "RequestedIPUnavailable", `pool "doomed", which is being deleted`)
	consistently(t, time.Second, func() string { return holds(t, ns, "web", "198.18.40.0", "doomed") })

	// Moving the Service to another pool releases the doomed one.
	updateService(t, ns, "web", func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationAddressPool] = "doomed-next" })
	waitIPs(t, ns, "web", "198.18.41.0")
	eventually(t, waitTime, func() string {
		if getPool(t, "doomed") != nil {
			return "the pool is still there after its last Service moved away"
		}
		return ""
	})
	waitReason(t, ns, "asks-pool", "NoMatchingPool", `requested pool "doomed" does not exist`)
}

func TestDeletedPoolGoesWithItsLastService(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "held", []string{"198.18.43.0/30"})
	startController(t, controllerOpts{})
	createService(t, ns, "a")
	waitIPs(t, ns, "a", "198.18.43.0")
	createService(t, ns, "b")
	waitIPs(t, ns, "b", "198.18.43.1")
	eventually(t, waitTime, func() string {
		if p := getPool(t, "held"); !controllerutil.ContainsFinalizer(p, v1beta1.FinalizerPoolInUse) {
			return "no finalizer yet"
		}
		return ""
	})
	if err := k8s.Delete(context.Background(), getPool(t, "held")); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, "held", v1beta1.ReasonPoolTerminating, "2 Services still hold", ns+"/a, "+ns+"/b")
	if err := k8s.Delete(context.Background(), getService(t, ns, "a")); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, "held", v1beta1.ReasonPoolTerminating, "1 Service still holds", ns+"/b")
	consistently(t, time.Second, func() string { return holds(t, ns, "b", "198.18.43.1", "held") })
	if err := k8s.Delete(context.Background(), getService(t, ns, "b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTime, func() string {
		if getPool(t, "held") != nil {
			return "the pool is still there after its last Service was deleted"
		}
		return ""
	})
}

func TestRemovingTheFinalizerForcesTheDeletion(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "forced", []string{"198.18.44.0/30"})
	startController(t, controllerOpts{})
	createService(t, ns, "web")
	waitIPs(t, ns, "web", "198.18.44.0")
	eventually(t, waitTime, func() string {
		if p := getPool(t, "forced"); !controllerutil.ContainsFinalizer(p, v1beta1.FinalizerPoolInUse) {
			return "no finalizer yet"
		}
		return ""
	})
	if err := k8s.Delete(context.Background(), getPool(t, "forced")); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, "forced", v1beta1.ReasonPoolTerminating, ns+"/web")
	// As the condition says.
	if err := k8s.Patch(context.Background(), getPool(t, "forced"), client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`))); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "web", "")
	waitReason(t, ns, "web", "NoMatchingPool", "no valid IPAddressPool")
}

func TestShrinkingAPoolInUseKeepsTheAddressesOutside(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "shrinks", []string{"198.18.45.0/29"})
	rc := startController(t, controllerOpts{})
	for i, name := range []string{"a", "b", "c"} {
		createService(t, ns, name)
		waitIPs(t, ns, name, fmt.Sprintf("198.18.45.%d", i))
	}

	// .1 and .4-.7 stay: a (.0) and c (.2) are left outside, .3 is gone.
	updatePool(t, "shrinks", func(p *v1beta1.IPAddressPool) {
		p.Spec.Addresses = []string{"198.18.45.1/32", "198.18.45.4/30"}
	})
	waitDraining(t, "shrinks", v1beta1.ReasonAddressesOutsidePool,
		"2 Services keep addresses that the pool's spec no longer includes: "+ns+"/a (198.18.45.0), "+ns+"/c (198.18.45.2)")
	eventually(t, waitTime, func() string {
		if evs := poolEvents(t, "shrinks"); countEvents(evs, "Warning AddressesOutsidePool") != 1 {
			return fmt.Sprintf("pool events %q, want one AddressesOutsidePool warning", evs)
		}
		return ""
	})
	updateService(t, ns, "a", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "1"} })
	consistently(t, 2*time.Second, func() string {
		for _, h := range [][2]string{{"a", "198.18.45.0"}, {"b", "198.18.45.1"}, {"c", "198.18.45.2"}} {
			if msg := holds(t, ns, h[0], h[1], "shrinks"); msg != "" {
				return msg
			}
		}
		return ""
	})
	// New Services get addresses of the new ranges only.
	createService(t, ns, "d")
	waitIPs(t, ns, "d", "198.18.45.4")
	createService(t, ns, "asks-old", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.45.3"))
	waitReason(t, ns, "asks-old", "RequestedIPUnavailable", "not in any valid IPAddressPool")
	eventually(t, waitTime, func() string {
		if st := poolStatus(t, "shrinks"); st.AssignedIPv4 != 2 || st.AvailableIPv4 != 3 {
			return fmt.Sprintf("pool status %+v, want the new ranges' counts: 2 assigned (b, d), 3 available", st)
		}
		return ""
	})

	// A restart keeps the addresses outside (they are restored from the
	// Services' pool annotation).
	rc.stop()
	startController(t, controllerOpts{})
	createService(t, ns, "e")
	waitIPs(t, ns, "e", "198.18.45.5")
	consistently(t, time.Second, func() string {
		for _, h := range [][2]string{{"a", "198.18.45.0"}, {"c", "198.18.45.2"}} {
			if msg := holds(t, ns, h[0], h[1], "shrinks"); msg != "" {
				return msg
			}
		}
		return ""
	})

	// Released, they are gone from the condition, then the condition too.
	if err := k8s.Delete(context.Background(), getService(t, ns, "a")); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, "shrinks", v1beta1.ReasonAddressesOutsidePool, "1 Service keeps addresses that the pool's spec no longer includes: "+ns+"/c (198.18.45.2)")
	if err := k8s.Delete(context.Background(), getService(t, ns, "c")); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTime, func() string {
		if c := meta.FindStatusCondition(poolStatus(t, "shrinks").Conditions, v1beta1.ConditionDraining); c != nil {
			return fmt.Sprintf("condition %+v after the last address outside was released", c)
		}
		return ""
	})
}
