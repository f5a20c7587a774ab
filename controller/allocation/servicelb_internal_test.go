package allocation

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/api/v1beta1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func slbObject(ns, name string, l map[string]string, deleting bool) metav1.PartialObjectMetadata {
	o := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
	if deleting {
		now := metav1.Now()
		o.DeletionTimestamp = &now
	}
	return o
}

func TestActiveServiceLB(t *testing.T) {
	web := types.NamespacedName{Namespace: "shop", Name: "web"}
	own := map[string]string{ServiceLBLabelName: "web", ServiceLBLabelNamespace: "shop"}
	objs := []metav1.PartialObjectMetadata{
		slbObject("kube-system", "svclb-web-b", own, false),
		slbObject("kube-system", "svclb-web-a", own, false),
		slbObject("kube-system", "svclb-web-gone", own, true),
		slbObject("kube-system", "svclb-web-other-ns", map[string]string{ServiceLBLabelName: "web", ServiceLBLabelNamespace: "dev"}, false),
		slbObject("kube-system", "no-namespace-label", map[string]string{ServiceLBLabelName: "web"}, false),
	}
	got := activeServiceLB(objs, web)
	if strings.Join(got, " ") != "kube-system/svclb-web-a kube-system/svclb-web-b" {
		t.Fatalf("active ServiceLB objects %q", got)
	}
	if got := activeServiceLB(objs[2:3], web); len(got) != 0 {
		t.Fatalf("a DaemonSet being deleted counts: %q", got)
	}
}

func TestServiceLBOwnerAndSelector(t *testing.T) {
	own := map[string]string{ServiceLBLabelName: "web", ServiceLBLabelNamespace: "shop"}
	if nn, ok := serviceLBOwner(own); !ok || nn.String() != "shop/web" {
		t.Fatalf("owner %v %v", nn, ok)
	}
	if _, ok := serviceLBOwner(map[string]string{ServiceLBLabelName: "web"}); ok {
		t.Fatal("a name without a namespace names a Service")
	}
	rke2 := map[string]string{"svccontroller.rke2.cattle.io/svcname": "web", "svccontroller.rke2.cattle.io/svcnamespace": "shop"}
	if nn, ok := serviceLBOwner(rke2); !ok || nn.String() != "shop/web" {
		t.Fatalf("RKE2's labels: owner %v %v", nn, ok)
	}
	if _, ok := serviceLBOwner(map[string]string{"app": "x"}); ok {
		t.Fatal("a DaemonSet without ServiceLB's labels names a Service")
	}
}

func TestServiceLBCondition(t *testing.T) {
	c := serviceLBCondition([]string{"kube-system/svclb-web-0a1b2c3d"}, []netip.Addr{netip.MustParseAddr("198.18.1.7")}, 3)
	if c.Type != v1beta1.ConditionIPAllocated || c.Status != metav1.ConditionFalse || c.Reason != v1beta1.ReasonServiceLBConflict || c.ObservedGeneration != 3 {
		t.Fatalf("condition %+v", c)
	}
	for _, want := range []string{
		"K3s ServiceLB also handles this Service (DaemonSet kube-system/svclb-web-0a1b2c3d)",
		"198.18.1.7 reserved",
		"start K3s with --disable=servicelb",
		"run Pharos with --lb-class=pharos.io/lb",
		"spec.loadBalancerClass: pharos.io/lb",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q lacks %q", c.Message, want)
		}
	}
	if c := serviceLBCondition([]string{"kube-system/svclb-x"}, nil, 1); !strings.Contains(c.Message, "no address reserved") {
		t.Errorf("message without a reservation: %q", c.Message)
	}
}
