package allocation_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// The forwarding mode of a Service (the controller's --forwarding, which a
// pharos.io/forwarding annotation overrides) shows in the ipMode of every
// ingress entry: VIP for kube-proxy, Proxy for direct. It changes nothing
// else: the addresses stay where they are.

// ipModes returns the Service's ingress as "ip=mode,...", with "nil" for
// an entry without ipMode.
func ipModes(s *corev1.Service) string {
	var out []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		m := "nil"
		if ing.IPMode != nil {
			m = string(*ing.IPMode)
		}
		out = append(out, ing.IP+"="+m)
	}
	return strings.Join(out, ",")
}

// waitIPModes waits until the Service's ingress, with modes, is exactly
// want ("ip=mode,...").
func waitIPModes(t *testing.T, ns, name, want string) *corev1.Service {
	t.Helper()
	var s *corev1.Service
	eventually(t, waitTime, func() string {
		s = getService(t, ns, name)
		if got := ipModes(s); got != want {
			return fmt.Sprintf("Service %s/%s has ingress %q, want %q; condition %+v", ns, name, got, want, meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated))
		}
		return ""
	})
	return s
}

// waitMode waits until the Service has an address and every ingress entry
// has the mode, and returns its addresses as ingressIPs does.
func waitMode(t *testing.T, ns, name string, mode corev1.LoadBalancerIPMode) string {
	t.Helper()
	var ips string
	eventually(t, waitTime, func() string {
		s := getService(t, ns, name)
		ips = ingressIPs(s)
		if got, want := ipModes(s), withModes(ips, mode); ips == "" || got != want {
			return fmt.Sprintf("Service %s/%s has ingress %q, want addresses with ipMode %s", ns, name, got, mode)
		}
		return ""
	})
	return ips
}

// withModes returns "ip=mode,..." for the comma-separated ips.
func withModes(ips string, mode corev1.LoadBalancerIPMode) string {
	var out []string
	for _, ip := range strings.Split(ips, ",") {
		out = append(out, ip+"="+string(mode))
	}
	return strings.Join(out, ",")
}

var (
	vip   = corev1.LoadBalancerIPModeVIP
	proxy = corev1.LoadBalancerIPModeProxy
	dual  = dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)
)

func forwardingAnnotation(mode string) svcOpt { return annotate(v1beta1.AnnotationForwarding, mode) }

func TestForwardingSetsIPModeOfEveryIngressEntry(t *testing.T) {
	createPool(t, "forwarding-modes", []string{"198.18.70.0/28", "2001:db8:70::/124"})
	for _, tc := range []struct {
		clusterDefault string // "" is the flag's default
		// The ipMode of a Service without annotation, and of one annotated
		// kube-proxy and direct.
		none, kubeProxy, direct corev1.LoadBalancerIPMode
	}{
		// VIP is Kubernetes' default, which the apiserver would write for
		// an entry without ipMode: the controller writes it itself, so
		// that its status compares equal to what it reads back.
		{clusterDefault: "", none: vip, kubeProxy: vip, direct: proxy},
		{clusterDefault: v1beta1.ForwardingKubeProxy, none: vip, kubeProxy: vip, direct: proxy},
		{clusterDefault: v1beta1.ForwardingDirect, none: proxy, kubeProxy: vip, direct: proxy},
	} {
		t.Run("default "+tc.clusterDefault, func(t *testing.T) {
			ns := testNamespace(t, nil)
			startController(t, controllerOpts{forwarding: tc.clusterDefault})
			createService(t, ns, "none", dual)
			createService(t, ns, "kube-proxy", dual, forwardingAnnotation(v1beta1.ForwardingKubeProxy))
			createService(t, ns, "direct", dual, forwardingAnnotation(v1beta1.ForwardingDirect))
			for name, mode := range map[string]corev1.LoadBalancerIPMode{"none": tc.none, "kube-proxy": tc.kubeProxy, "direct": tc.direct} {
				if ips := waitMode(t, ns, name, mode); strings.Count(ips, ",") != 1 {
					t.Errorf("Service %s has ingress %q, want one IPv4 and one IPv6 address", name, ips)
				}
			}
		})
	}
}

func TestForwardingAnnotationChangeRewritesIPModeInPlace(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "forwarding-switch", []string{"198.18.71.0/28", "2001:db8:71::/124"})
	startController(t, controllerOpts{})

	createService(t, ns, "web", dual)
	ips := ingressIPs(waitIPModes(t, ns, "web", "198.18.71.0=VIP,2001:db8:71::=VIP"))
	waitEvent(t, ns, "web", "IPAllocated")

	for _, step := range []struct {
		annotation string // "" removes it
		mode       corev1.LoadBalancerIPMode
	}{
		{v1beta1.ForwardingDirect, proxy},
		{v1beta1.ForwardingKubeProxy, vip},
		{v1beta1.ForwardingNodePort, proxy},
		{v1beta1.ForwardingDirect, proxy},
		{"", vip},
	} {
		updateService(t, ns, "web", func(s *corev1.Service) {
			if step.annotation == "" {
				delete(s.Annotations, v1beta1.AnnotationForwarding)
			} else {
				forwardingAnnotation(step.annotation)(s)
			}
		})
		// The same addresses, in the same order, with the new mode.
		waitIPModes(t, ns, "web", withModes(ips, step.mode))
	}
	// The outcome (the addresses) never changed, so neither did the
	// condition: one IPAllocated event in all.
	if n := countEvents(events(t, ns, "web"), "IPAllocated"); n != 1 {
		t.Errorf("%d IPAllocated events, want 1: %q", n, events(t, ns, "web"))
	}
}

func TestForwardingFlagChangeAcrossRestartRewritesIPModeInPlace(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "forwarding-restart", []string{"198.18.72.0/28"})
	first := startController(t, controllerOpts{forwarding: v1beta1.ForwardingKubeProxy})
	createService(t, ns, "default")
	createService(t, ns, "pinned", forwardingAnnotation(v1beta1.ForwardingKubeProxy))
	def := waitMode(t, ns, "default", vip)
	pinned := waitMode(t, ns, "pinned", vip)
	first.stop()

	startController(t, controllerOpts{forwarding: v1beta1.ForwardingDirect})
	waitIPModes(t, ns, "default", withModes(def, proxy))
	// The annotation still wins, and the new default moves nothing.
	consistently(t, 2*time.Second, func() string {
		if got, want := ipModes(getService(t, ns, "pinned")), withModes(pinned, vip); got != want {
			return fmt.Sprintf("annotated Service has ingress %q, want %q", got, want)
		}
		return ""
	})
}

func TestForwardingInvalidAnnotationIsReportedAndUsesTheDefault(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "forwarding-invalid", []string{"198.18.73.0/28"})
	startController(t, controllerOpts{forwarding: v1beta1.ForwardingDirect})

	createService(t, ns, "typo", forwardingAnnotation("dsr"))
	// The Service gets its address, with the cluster's default mode.
	ips := ingressIPs(waitIPModes(t, ns, "typo", "198.18.73.0=Proxy"))
	c := waitReason(t, ns, "typo", "Allocated", `annotation pharos.io/forwarding is "dsr"`)
	if c.Status != metav1.ConditionTrue {
		t.Errorf("condition %+v, want status True: the address is allocated", c)
	}
	for _, want := range []string{"198.18.73.0", `cluster default "direct"`, `"kube-proxy" or "nodeport" or "direct"`} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("condition message %q does not say %q", c.Message, want)
		}
	}
	waitEvent(t, ns, "typo", "Warning "+v1beta1.ReasonInvalidForwarding+`: annotation pharos.io/forwarding is "dsr"`)

	// Once per problem, not once per reconcile.
	updateService(t, ns, "typo", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "yes"} })
	consistently(t, 2*time.Second, func() string {
		if evs := events(t, ns, "typo"); countEvents(evs, v1beta1.ReasonInvalidForwarding) != 1 {
			return fmt.Sprintf("want one %s event: %q", v1beta1.ReasonInvalidForwarding, evs)
		}
		return ""
	})

	// Another wrong value is a new problem, reported again.
	updateService(t, ns, "typo", forwardingAnnotation("Direct"))
	waitEvent(t, ns, "typo", `annotation pharos.io/forwarding is "Direct"`)

	// Fixed, the message no longer mentions it, and the mode applies, on
	// the same address.
	updateService(t, ns, "typo", forwardingAnnotation(v1beta1.ForwardingKubeProxy))
	waitIPModes(t, ns, "typo", withModes(ips, vip))
	eventually(t, waitTime, func() string {
		c := meta.FindStatusCondition(getService(t, ns, "typo").Status.Conditions, v1beta1.ConditionIPAllocated)
		if c == nil || c.Status != metav1.ConditionTrue || strings.Contains(c.Message, v1beta1.AnnotationForwarding) {
			return fmt.Sprintf("condition %+v, want Allocated without the forwarding problem", c)
		}
		return ""
	})
}
