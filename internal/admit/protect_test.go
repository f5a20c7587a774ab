package admit_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
)

func lbService(ns, name, pool string, ips ...string) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	if pool != "" {
		s.Annotations = map[string]string{v1beta1.AnnotationAllocatedFromPool: pool}
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func addressPool(name string, addrs ...string) *v1beta1.IPAddressPool {
	return &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
}

func TestDeletePoolWarnsAboutTheServicesThatUseIt(t *testing.T) {
	svcs := []corev1.Service{
		lbService("web", "b", "lan", "198.18.0.2"),
		lbService("web", "a", "lan", "198.18.0.1", "2001:db8::1"),
		lbService("web", "other-pool", "wan", "198.18.1.1"),
		lbService("web", "pending", "lan"),
		lbService("web", "foreign", "", "198.18.0.3"),
	}
	cluster := lbService("web", "cluster-ip", "lan", "198.18.0.4")
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	svcs = append(svcs, cluster)

	got := admit.DeletePool(addressPool("lan", "198.18.0.0/24"), svcs)
	want := "IPAddressPool lan is used by 2 Services (web/a, web/b): it stays Terminating until they release their addresses, which they keep meanwhile; delete those Services or move them to another pool, or remove the finalizer pharos.io/pool-in-use-protection to take their addresses away now"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("DeletePool = %q\nwant %q", got, want)
	}
	if got := admit.DeletePool(addressPool("unused", "198.18.9.0/24"), svcs); len(got) != 0 {
		t.Fatalf("deleting an unused pool warns %q", got)
	}
}

func TestDeletePoolNamesFiveServicesAndCountsTheRest(t *testing.T) {
	var svcs []corev1.Service
	for i := 0; i < 8; i++ {
		svcs = append(svcs, lbService("ns", fmt.Sprintf("s%d", i), "lan", fmt.Sprintf("198.18.0.%d", i+1)))
	}
	got := strings.Join(admit.DeletePool(addressPool("lan", "198.18.0.0/24"), svcs), "\n")
	if !strings.Contains(got, "used by 8 Services (ns/s0, ns/s1, ns/s2, ns/s3, ns/s4 and 3 more)") {
		t.Fatalf("DeletePool = %q", got)
	}
}

func TestShrinkPoolWarnsAboutAddressesLeftOut(t *testing.T) {
	svcs := []corev1.Service{
		lbService("web", "inside", "lan", "198.18.0.5"),
		lbService("web", "outside", "lan", "198.18.0.200", "2001:db8::1"),
		lbService("web", "zero", "lan", "198.18.0.0"),
		lbService("web", "elsewhere", "wan", "198.18.0.201"),
	}
	shrunk := addressPool("lan", "198.18.0.0/25", "2001:db8::/64")
	shrunk.Spec.AvoidBuggyIPs = true
	got := admit.ShrinkPool(shrunk, svcs)
	want := "the new spec of IPAddressPool lan leaves out addresses that 2 Services hold: web/outside (198.18.0.200), web/zero (198.18.0.0); they keep them until they release them (the pool's pharos.io/Draining condition names them), no other Service gets them meanwhile, and new Services get addresses of the new spec only"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("ShrinkPool = %q\nwant %q", got, want)
	}
	// Growing, or a spec that keeps every address in use, says nothing.
	if got := admit.ShrinkPool(addressPool("lan", "198.18.0.0/24", "2001:db8::/64"), svcs); len(got) != 0 {
		t.Fatalf("a spec that keeps every address warns %q", got)
	}
	// An invalid spec is refused by its errors, not warned about.
	if got := admit.ShrinkPool(addressPool("lan", "not-a-range"), svcs); len(got) != 0 {
		t.Fatalf("an invalid spec warns %q", got)
	}
}
