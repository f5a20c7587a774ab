package agent

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testOptions() Options {
	o := Options{
		Kubeconfig:     "unused",
		NodeName:       "plab-n1",
		InternalIPs:    []netip.Addr{netip.MustParseAddr("2001:db8:96::11"), netip.MustParseAddr("198.18.96.11")},
		PodCIDRs:       []netip.Prefix{netip.MustParsePrefix("2001:db8:42:1::/64"), netip.MustParsePrefix("198.18.33.0/24")},
		Bridge:         "cbr0",
		PodNetnsPrefix: "plab-n1-p",
		EchoCommand:    []string{"/bin/lab", "echo"},
	}
	if err := o.normalize(); err != nil {
		panic(err)
	}
	return o
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNormalizeOrdersIPv4First(t *testing.T) {
	o := testOptions()
	if !o.InternalIPs[0].Is4() || !o.PodCIDRs[0].Addr().Is4() {
		t.Fatalf("want IPv4 first: %v %v", o.InternalIPs, o.PodCIDRs)
	}
	bad := Options{NodeName: "x"}
	if err := bad.normalize(); err == nil {
		t.Fatal("want error for incomplete options")
	}
}

func TestRegisterNodeShape(t *testing.T) {
	cs := fake.NewClientset()
	n := &nodeAgent{cs: cs, opts: testOptions(), log: quietLog()}
	ctx := context.Background()
	if err := n.registerOnce(ctx); err != nil {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, "plab-n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels[corev1.LabelHostname] != "plab-n1" || node.Labels[corev1.LabelOSStable] != "linux" {
		t.Errorf("labels %v", node.Labels)
	}
	if node.Spec.PodCIDR != "198.18.33.0/24" || len(node.Spec.PodCIDRs) != 2 || node.Spec.PodCIDRs[1] != "2001:db8:42:1::/64" {
		t.Errorf("podCIDRs %q %q", node.Spec.PodCIDR, node.Spec.PodCIDRs)
	}
	wantAddrs := []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "198.18.96.11"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:96::11"},
		{Type: corev1.NodeHostName, Address: "plab-n1"},
	}
	if len(node.Status.Addresses) != len(wantAddrs) {
		t.Fatalf("addresses %v", node.Status.Addresses)
	}
	for i, a := range wantAddrs {
		if node.Status.Addresses[i] != a {
			t.Errorf("address %d = %v, want %v", i, node.Status.Addresses[i], a)
		}
	}
	for res, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: "4", corev1.ResourceMemory: "8Gi", corev1.ResourcePods: "110"} {
		if q := node.Status.Capacity[res]; q.String() != want {
			t.Errorf("capacity %s = %s", res, q.String())
		}
		if q := node.Status.Allocatable[res]; q.String() != want {
			t.Errorf("allocatable %s = %s", res, q.String())
		}
	}
	if node.Status.NodeInfo.KubeletVersion != "v1.37.2" || node.Status.NodeInfo.OperatingSystem != "linux" || node.Status.NodeInfo.Architecture == "" {
		t.Errorf("nodeInfo %+v", node.Status.NodeInfo)
	}
	if node.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("kubelet port %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	}
	want := map[corev1.NodeConditionType]corev1.ConditionStatus{
		corev1.NodeReady: corev1.ConditionTrue, corev1.NodeMemoryPressure: corev1.ConditionFalse,
		corev1.NodeDiskPressure: corev1.ConditionFalse, corev1.NodePIDPressure: corev1.ConditionFalse,
	}
	for _, c := range node.Status.Conditions {
		if s, ok := want[c.Type]; ok && s == c.Status {
			delete(want, c.Type)
		}
		if c.Type == corev1.NodeReady && c.Reason != "KubeletReady" {
			t.Errorf("Ready reason %q", c.Reason)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v in %v", want, node.Status.Conditions)
	}

	// A second registration (agent restart) updates in place and keeps the
	// Ready transition time.
	before := readyCondition(node)
	time.Sleep(1100 * time.Millisecond)
	n2 := &nodeAgent{cs: cs, opts: testOptions(), log: quietLog()}
	if err := n2.registerOnce(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ = cs.CoreV1().Nodes().Get(ctx, "plab-n1", metav1.GetOptions{})
	after := readyCondition(node)
	if !after.LastTransitionTime.Equal(&before.LastTransitionTime) {
		t.Errorf("transition time moved: %v -> %v", before.LastTransitionTime, after.LastTransitionTime)
	}
	if !after.LastHeartbeatTime.After(before.LastHeartbeatTime.Time) {
		t.Errorf("heartbeat not refreshed: %v -> %v", before.LastHeartbeatTime, after.LastHeartbeatTime)
	}
}

func readyCondition(node *corev1.Node) corev1.NodeCondition {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func TestLeaseAndTaint(t *testing.T) {
	cs := fake.NewClientset()
	ctx := context.Background()
	n := &nodeAgent{cs: cs, opts: testOptions(), log: quietLog()}
	if err := n.registerOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n.uid = "node-uid" // the fake clientset assigns no UIDs
	if err := n.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "plab-n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *l.Spec.HolderIdentity != "plab-n1" || *l.Spec.LeaseDurationSeconds != 40 || l.Spec.RenewTime == nil {
		t.Errorf("lease spec %+v", l.Spec)
	}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "Node" || l.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("owner refs %v", l.OwnerReferences)
	}
	first := l.Spec.RenewTime.Time
	time.Sleep(10 * time.Millisecond)
	if err := n.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ = cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "plab-n1", metav1.GetOptions{})
	if !l.Spec.RenewTime.After(first) {
		t.Error("lease not renewed")
	}

	// The lifecycle controller's taint is left alone at first, and removed
	// once Ready has been posted for a while without the controller doing so.
	node, _ := cs.CoreV1().Nodes().Get(ctx, "plab-n1", metav1.GetOptions{})
	node.Spec.Taints = []corev1.Taint{
		{Key: taintNotReady, Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/other", Effect: corev1.TaintEffectNoSchedule},
	}
	if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.postStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.dropStaleNotReadyTaint(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ = cs.CoreV1().Nodes().Get(ctx, "plab-n1", metav1.GetOptions{})
	if !hasTaint(node, taintNotReady) {
		t.Fatal("taint removed too early")
	}
	n.readySince = time.Now().Add(-time.Minute)
	if err := n.dropStaleNotReadyTaint(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ = cs.CoreV1().Nodes().Get(ctx, "plab-n1", metav1.GetOptions{})
	if hasTaint(node, taintNotReady) || !hasTaint(node, "example.com/other") {
		t.Fatalf("taints after cleanup: %v", node.Spec.Taints)
	}
}
