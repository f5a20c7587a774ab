package allocation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"k8s.io/utils/ptr"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

func TestAssignment(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "assign", []string{"198.18.10.0/30"})
	startController(t, controllerOpts{})

	createService(t, ns, "web")
	s := waitIPs(t, ns, "web", "198.18.10.0")
	if m := s.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	if got := s.Annotations[v1beta1.AnnotationAllocatedFromPool]; got != "assign" {
		t.Errorf("pool annotation = %q", got)
	}
	c := meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "Allocated" || !strings.Contains(c.Message, "198.18.10.0") {
		t.Errorf("condition %+v", c)
	}
	createService(t, ns, "api")
	waitIPs(t, ns, "api", "198.18.10.1")
	waitEvent(t, ns, "web", "IPAllocated")

	// A change that does not affect the assignment writes no event.
	updateService(t, ns, "web", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "yes"} })
	consistently(t, 2*time.Second, func() string {
		if n := countEvents(events(t, ns, "web"), "IPAllocated"); n != 1 {
			return fmt.Sprintf("%d IPAllocated events, want 1: %q", n, events(t, ns, "web"))
		}
		return ""
	})
	eventually(t, waitTime, func() string {
		st := poolStatus(t, "assign")
		if st.AssignedIPv4 != 2 || st.AvailableIPv4 != 2 {
			return fmt.Sprintf("pool status %+v", st)
		}
		return ""
	})

	// Deleting a Service frees its address.
	if err := k8s.Delete(context.Background(), getService(t, ns, "web")); err != nil {
		t.Fatal(err)
	}
	createService(t, ns, "next")
	waitIPs(t, ns, "next", "198.18.10.0")
}

func TestRequestedIP(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "req", []string{"198.18.11.0/24"})
	startController(t, controllerOpts{})

	createService(t, ns, "by-annotation", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.11.77"))
	waitIPs(t, ns, "by-annotation", "198.18.11.77")
	createService(t, ns, "by-spec", loadBalancerIP("198.18.11.78"))
	waitIPs(t, ns, "by-spec", "198.18.11.78")

	// MetalLB's annotation works, with one warning that names ours.
	createService(t, ns, "metallb", annotate("metallb.io/loadBalancerIPs", "198.18.11.79"))
	waitIPs(t, ns, "metallb", "198.18.11.79")
	waitEvent(t, ns, "metallb", "rename it to pharos.io/loadBalancerIPs")
	createService(t, ns, "legacy", annotate("metallb.universe.tf/loadBalancerIPs", "198.18.11.80"))
	waitIPs(t, ns, "legacy", "198.18.11.80")

	createService(t, ns, "taken", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.11.77"))
	waitReason(t, ns, "taken", "RequestedIPUnavailable", "held by Service "+ns+"/by-annotation")
	waitEvent(t, ns, "taken", "RequestedIPUnavailable")
	createService(t, ns, "outside", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.99.1"))
	waitReason(t, ns, "outside", "RequestedIPUnavailable", "not in any valid IPAddressPool")
	createService(t, ns, "garbage", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.11.300"))
	waitReason(t, ns, "garbage", "InvalidRequest", "pharos.io/loadBalancerIPs")

	// A typo on a Service that has an address keeps the address.
	updateService(t, ns, "by-spec", func(s *corev1.Service) {
		s.Annotations = map[string]string{v1beta1.AnnotationLoadBalancerIPs: "not-an-ip"}
	})
	c := waitReason(t, ns, "by-spec", "InvalidRequest", "keeping 198.18.11.78")
	if c.Status != metav1.ConditionFalse {
		t.Errorf("condition status %s", c.Status)
	}
	if got := ingressIPs(getService(t, ns, "by-spec")); got != "198.18.11.78" {
		t.Errorf("the Service lost its address: %q", got)
	}
	// Changing the request moves the Service to the new address.
	updateService(t, ns, "by-annotation", func(s *corev1.Service) {
		s.Annotations[v1beta1.AnnotationLoadBalancerIPs] = "198.18.11.90"
	})
	waitIPs(t, ns, "by-annotation", "198.18.11.90")
	waitIPs(t, ns, "taken", "198.18.11.77")
}

func TestRequestedPool(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "pool-a", []string{"198.18.12.0/28"})
	createPool(t, "pool-b", []string{"198.18.12.16/28"})
	startController(t, controllerOpts{})

	createService(t, ns, "default-order")
	waitIPs(t, ns, "default-order", "198.18.12.0")
	createService(t, ns, "in-b", annotate(v1beta1.AnnotationAddressPool, "pool-b"))
	waitIPs(t, ns, "in-b", "198.18.12.16")
	createService(t, ns, "alias", annotate("metallb.universe.tf/address-pool", "pool-b"))
	waitIPs(t, ns, "alias", "198.18.12.17")
	createService(t, ns, "missing", annotate(v1beta1.AnnotationAddressPool, "nope"))
	waitReason(t, ns, "missing", "NoMatchingPool", `requested pool "nope" does not exist`)
	createService(t, ns, "conflict", annotate(v1beta1.AnnotationAddressPool, "pool-a"), annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.12.20"))
	waitReason(t, ns, "conflict", "InvalidRequest", `not to the requested pool "pool-a"`)
	// Asking for another pool moves the Service.
	updateService(t, ns, "default-order", func(s *corev1.Service) {
		s.Annotations = map[string]string{v1beta1.AnnotationAddressPool: "pool-b"}
	})
	waitIPs(t, ns, "default-order", "198.18.12.18")
}

func TestExhaustionThenRecovery(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "tiny", []string{"198.18.13.5-198.18.13.5"})
	startController(t, controllerOpts{})

	createService(t, ns, "first")
	waitIPs(t, ns, "first", "198.18.13.5")
	createService(t, ns, "second")
	c := waitReason(t, ns, "second", "PoolExhausted", "tiny")
	if c.Status != metav1.ConditionFalse {
		t.Errorf("condition %+v", c)
	}
	waitEvent(t, ns, "second", "Warning PoolExhausted")
	if got := ingressIPs(getService(t, ns, "second")); got != "" {
		t.Fatalf("exhausted Service has ingress %q", got)
	}
	if err := k8s.Delete(context.Background(), getService(t, ns, "first")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "second", "198.18.13.5")
	waitReason(t, ns, "second", "Allocated", "198.18.13.5")
}

func TestSharing(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "share", []string{"198.18.14.0/24"})
	startController(t, controllerOpts{})
	key := v1beta1.AnnotationAllowSharedIP

	createService(t, ns, "dns-tcp", annotate(key, "dns"), withPorts(port(corev1.ProtocolTCP, 53)))
	waitIPs(t, ns, "dns-tcp", "198.18.14.0")
	createService(t, ns, "dns-udp", annotate(key, "dns"), withPorts(port(corev1.ProtocolUDP, 53)))
	waitIPs(t, ns, "dns-udp", "198.18.14.0")

	// Each sharing rule refused, on a requested shared address.
	createService(t, ns, "other-key", annotate(key, "web"), annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.14.0"), withPorts(port(corev1.ProtocolTCP, 8080)))
	waitReason(t, ns, "other-key", "SharingConflict", `shared under key "dns"`)
	createService(t, ns, "port-clash", annotate(key, "dns"), annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.14.0"), withPorts(port(corev1.ProtocolUDP, 53)))
	waitReason(t, ns, "port-clash", "SharingConflict", "port UDP/53 is already used")
	createService(t, ns, "no-key", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.14.0"), withPorts(port(corev1.ProtocolTCP, 9090)))
	waitReason(t, ns, "no-key", "RequestedIPUnavailable", "same pharos.io/allow-shared-ip")

	createService(t, ns, "local-a", annotate(key, "loc"), localPolicy(map[string]string{"app": "a"}), withPorts(port(corev1.ProtocolTCP, 80)))
	waitIPs(t, ns, "local-a", "198.18.14.1")
	createService(t, ns, "local-b", annotate(key, "loc"), annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.14.1"), localPolicy(map[string]string{"app": "b"}), withPorts(port(corev1.ProtocolTCP, 81)))
	waitReason(t, ns, "local-b", "SharingConflict", "same selector")
	createService(t, ns, "local-a2", annotate(key, "loc"), localPolicy(map[string]string{"app": "a"}), withPorts(port(corev1.ProtocolTCP, 81)))
	waitIPs(t, ns, "local-a2", "198.18.14.1")

	// The shared address stays with dns-udp when dns-tcp goes away.
	if err := k8s.Delete(context.Background(), getService(t, ns, "dns-tcp")); err != nil {
		t.Fatal(err)
	}
	createService(t, ns, "after")
	waitIPs(t, ns, "after", "198.18.14.2")
	if got := ingressIPs(getService(t, ns, "dns-udp")); got != "198.18.14.0" {
		t.Fatalf("dns-udp moved to %q", got)
	}
}

func TestDualStack(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "dual", []string{"198.18.15.0/24", "2001:db8:15::/64"})
	createPool(t, "v4only", []string{"198.18.16.0/24"}, noAutoAssign)
	startController(t, controllerOpts{})

	createService(t, ns, "require", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitIPs(t, ns, "require", "198.18.15.0,2001:db8:15::")
	createService(t, ns, "prefer-v6-first", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol))
	waitIPs(t, ns, "prefer-v6-first", "2001:db8:15::1,198.18.15.1")
	createService(t, ns, "single-v6", dualStack(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
	waitIPs(t, ns, "single-v6", "2001:db8:15::2")
	createService(t, ns, "single-v4", dualStack(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol))
	waitIPs(t, ns, "single-v4", "198.18.15.2")
	createService(t, ns, "require-v4-pool", annotate(v1beta1.AnnotationAddressPool, "v4only"),
		dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitReason(t, ns, "require-v4-pool", "NoMatchingPool", "holds both IPv4 and IPv6")
	createService(t, ns, "prefer-v4-pool", annotate(v1beta1.AnnotationAddressPool, "v4only"),
		dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitIPs(t, ns, "prefer-v4-pool", "198.18.16.0")
	createService(t, ns, "dual-requested", annotate(v1beta1.AnnotationLoadBalancerIPs, "2001:db8:15::99,198.18.15.99"),
		dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitIPs(t, ns, "dual-requested", "198.18.15.99,2001:db8:15::99")
	eventually(t, waitTime, func() string {
		st := poolStatus(t, "dual")
		if st.AssignedIPv4 != 4 || st.AssignedIPv6 != 4 || st.AvailableIPv4 != 252 {
			return fmt.Sprintf("pool status %+v", st)
		}
		return ""
	})
}

func TestAutoAssignFalse(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "manual", []string{"198.18.17.0/24"}, noAutoAssign)
	startController(t, controllerOpts{})

	createService(t, ns, "auto")
	waitReason(t, ns, "auto", "NoMatchingPool", "autoAssign")
	createService(t, ns, "by-pool", annotate(v1beta1.AnnotationAddressPool, "manual"))
	waitIPs(t, ns, "by-pool", "198.18.17.0")
	createService(t, ns, "by-ip", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.17.9"))
	waitIPs(t, ns, "by-ip", "198.18.17.9")
}

func TestAvoidBuggyIPs(t *testing.T) {
	ns := testNamespace(t, nil)
	pool := createPool(t, "buggy", []string{"198.18.18.255-198.18.19.1"})
	startController(t, controllerOpts{})

	createService(t, ns, "a")
	waitIPs(t, ns, "a", "198.18.18.255")
	createService(t, ns, "b")
	waitIPs(t, ns, "b", "198.18.19.0")
	// Turning avoidBuggyIPs on leaves .255 and .0 out of the pool: their
	// Services keep them until they release them (protect.go), the pool
	// says so, and new Services get .1 only.
	updatePool(t, pool.Name, func(p *v1beta1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true })
	waitDraining(t, pool.Name, v1beta1.ReasonAddressesOutsidePool, ns+"/a (198.18.18.255), "+ns+"/b (198.18.19.0)")
	createService(t, ns, "c")
	waitIPs(t, ns, "c", "198.18.19.1")
	createService(t, ns, "d")
	waitReason(t, ns, "d", "PoolExhausted", "buggy")
	for _, h := range [][2]string{{"a", "198.18.18.255"}, {"b", "198.18.19.0"}} {
		if msg := holds(t, ns, h[0], h[1], pool.Name); msg != "" {
			t.Error(msg)
		}
	}
	// Released, .0 is not given again.
	if err := k8s.Delete(context.Background(), getService(t, ns, "b")); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, pool.Name, v1beta1.ReasonAddressesOutsidePool, "1 Service keeps", ns+"/a (198.18.18.255)")
	waitReason(t, ns, "d", "PoolExhausted", "buggy")
}

func TestNamespaceSelectorAndPriority(t *testing.T) {
	prod := testNamespace(t, map[string]string{"tier": "prod"})
	dev := testNamespace(t, nil)
	createPool(t, "general", []string{"198.18.20.0/24"}, allocateTo(v1beta1.ServiceAllocation{Priority: 1}))
	createPool(t, "low-prio", []string{"198.18.23.0/24"}, allocateTo(v1beta1.ServiceAllocation{Priority: 5}))
	createPool(t, "prod-only", []string{"198.18.21.0/24"}, allocateTo(v1beta1.ServiceAllocation{
		Priority:           10,
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "prod"}}},
	}))
	createPool(t, "public-only", []string{"198.18.22.0/24"}, allocateTo(v1beta1.ServiceAllocation{
		Namespaces:       []string{dev},
		ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"exposure": "public"}}},
	}), noAutoAssign)
	startController(t, controllerOpts{})

	createService(t, prod, "shop")
	waitIPs(t, prod, "shop", "198.18.21.0")
	createService(t, dev, "tool")
	waitIPs(t, dev, "tool", "198.18.20.0")
	createService(t, dev, "public", withLabels(map[string]string{"exposure": "public"}), annotate(v1beta1.AnnotationAddressPool, "public-only"))
	waitIPs(t, dev, "public", "198.18.22.0")
	createService(t, prod, "not-public", annotate(v1beta1.AnnotationAddressPool, "public-only"))
	waitReason(t, prod, "not-public", "NoMatchingPool", "does not serve")

	// A pending Service gets its address once its namespace is labelled.
	pinned := testNamespace(t, nil)
	createPool(t, "pinned", []string{"198.18.24.0/24"}, allocateTo(v1beta1.ServiceAllocation{
		NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "blue"}}},
	}))
	createService(t, pinned, "waiting", annotate(v1beta1.AnnotationAddressPool, "pinned"))
	waitReason(t, pinned, "waiting", "NoMatchingPool", "does not serve")
	nsObj := &corev1.Namespace{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: pinned}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["team"] = "blue"
	if err := k8s.Update(context.Background(), nsObj); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, pinned, "waiting", "198.18.24.0")
}

func TestPoolShrinkAndDelete(t *testing.T) {
	ns := testNamespace(t, nil)
	big := createPool(t, "big", []string{"198.18.25.0/29"})
	other := createPool(t, "other", []string{"198.18.26.0/29"})
	startController(t, controllerOpts{})
	for i := 0; i < 4; i++ {
		createService(t, ns, fmt.Sprint("s", i))
		waitIPs(t, ns, fmt.Sprint("s", i), fmt.Sprint("198.18.25.", i))
	}
	// Shrink to .0-.1: every Service keeps its address (s2 and s3 outside
	// the pool, which says so), and a new one goes to "other".
	updatePool(t, big.Name, func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = []string{"198.18.25.0/31"} })
	waitDraining(t, big.Name, v1beta1.ReasonAddressesOutsidePool, ns+"/s2 (198.18.25.2), "+ns+"/s3 (198.18.25.3)")
	createService(t, ns, "s4")
	waitIPs(t, ns, "s4", "198.18.26.0")
	// Delete "other": it stays Terminating while s4 uses it; forced (its
	// finalizer removed), s4 has nowhere to go and says so.
	if err := k8s.Delete(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	waitDraining(t, other.Name, v1beta1.ReasonPoolTerminating, ns+"/s4")
	if msg := holds(t, ns, "s4", "198.18.26.0", other.Name); msg != "" {
		t.Fatal(msg)
	}
	deletePool(other.Name)
	waitReason(t, ns, "s4", "PoolExhausted", "big")
	waitIPs(t, ns, "s4", "")
	for i := 0; i < 4; i++ {
		if msg := holds(t, ns, fmt.Sprint("s", i), fmt.Sprint("198.18.25.", i), big.Name); msg != "" {
			t.Error(msg)
		}
	}
}

func TestInvalidPoolKeepsOthersWorking(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "good", []string{"198.18.27.0/24"})
	startController(t, controllerOpts{})
	createService(t, ns, "web")
	waitIPs(t, ns, "web", "198.18.27.0")

	createPool(t, "overlapping", []string{"198.18.28.0/24", "198.18.27.128/25"})
	var cond *metav1.Condition
	eventually(t, waitTime, func() string {
		p := &v1beta1.IPAddressPool{}
		_ = k8s.Get(context.Background(), types.NamespacedName{Name: "overlapping"}, p)
		cond = meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionValid)
		if cond == nil || cond.Status != metav1.ConditionFalse {
			return fmt.Sprintf("condition %+v", cond)
		}
		return ""
	})
	for _, want := range []string{"spec.addresses[1]", `IPAddressPool "good"`, "remove the overlap"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("Valid message %q lacks %q", cond.Message, want)
		}
	}
	if c := meta.FindStatusCondition(poolStatus(t, "good").Conditions, v1beta1.ConditionValid); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the good pool is not Valid: %+v", c)
	}
	createService(t, ns, "api")
	waitIPs(t, ns, "api", "198.18.27.1")
	if got := ingressIPs(getService(t, ns, "web")); got != "198.18.27.0" {
		t.Errorf("web moved to %q", got)
	}
	// The apiserver itself rejects what one object can check.
	bad := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.29.5/24"}}}
	if err := k8s.Create(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "spec.addresses") {
		t.Errorf("creating a pool with host bits set: %v", err)
	}
}

func TestLoadBalancerClassAndTypeChange(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "class", []string{"198.18.30.0/24"})
	first := startController(t, controllerOpts{})

	createService(t, ns, "other-class", withClass("example.com/other"))
	createService(t, ns, "ours")
	waitIPs(t, ns, "ours", "198.18.30.0")
	consistently(t, time.Second, func() string {
		if s := getService(t, ns, "other-class"); ingressIPs(s) != "" || len(s.Status.Conditions) > 0 {
			return fmt.Sprintf("a Service of another class was touched: %+v", s.Status)
		}
		return ""
	})

	// Type change to ClusterIP releases the address.
	updateService(t, ns, "ours", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.Ports[0].NodePort = 0
		s.Spec.AllocateLoadBalancerNodePorts = nil
		s.Spec.ExternalTrafficPolicy = ""
	})
	eventually(t, waitTime, func() string {
		s := getService(t, ns, "ours")
		if ingressIPs(s) != "" || s.Annotations[v1beta1.AnnotationAllocatedFromPool] != "" || meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated) != nil {
			return fmt.Sprintf("status not cleared: %+v %v", s.Status, s.Annotations)
		}
		return ""
	})
	createService(t, ns, "reuse")
	waitIPs(t, ns, "reuse", "198.18.30.0")

	// Back to LoadBalancer, but of another class: still not ours.
	updateService(t, ns, "ours", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerClass = ptr.To("example.com/other")
	})
	consistently(t, time.Second, func() string {
		if s := getService(t, ns, "ours"); ingressIPs(s) != "" {
			return fmt.Sprintf("a Service of another class got %q", ingressIPs(s))
		}
		return ""
	})

	// A controller started with a class serves only that class, and never
	// hands out an address that a Service of another class shows.
	first.stop()
	classNs := testNamespace(t, nil)
	createService(t, classNs, "classy", withClass("pharos.io/lb"))
	createService(t, classNs, "plain")
	startController(t, controllerOpts{class: "pharos.io/lb"})
	waitIPs(t, classNs, "classy", "198.18.30.1")
	consistently(t, time.Second, func() string {
		if s := getService(t, classNs, "plain"); ingressIPs(s) != "" {
			return fmt.Sprintf("a Service without the class got %q", ingressIPs(s))
		}
		return ""
	})
}
