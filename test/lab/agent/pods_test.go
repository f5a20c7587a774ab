package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// managerWith returns a pod manager whose lister holds exactly pods, so
// reconcile can be driven without an informer.
func managerWith(t *testing.T, pods ...*corev1.Pod) (*podManager, *fake.Clientset) {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	cs := fake.NewClientset()
	for _, p := range pods {
		if err := cs.Tracker().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	m := newPodManager(cs, testOptions(), quietLog())
	m.lister = corelisters.NewPodLister(idx)
	return m, cs
}

func TestReconcileHostNetworkPodIsReportedUnsupported(t *testing.T) {
	pod := testPod()
	pod.Spec.HostNetwork = true
	m, cs := managerWith(t, pod)
	if err := m.reconcile(context.Background(), "default/web-1"); err != nil {
		t.Fatal(err)
	}
	got, _ := cs.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{})
	if got.Status.Phase != corev1.PodPending || !podConditionIs(got.Status.Conditions, corev1.PodReady, corev1.ConditionFalse) {
		t.Fatalf("status %+v", got.Status)
	}
	if len(m.slots) != 0 {
		t.Fatal("hostNetwork pod got a slot")
	}
}

func TestReconcileFinalizesTerminatingPod(t *testing.T) {
	pod := testPod()
	now := metav1.NewTime(time.Now())
	pod.DeletionTimestamp = &now
	pod.DeletionGracePeriodSeconds = new(int64(30))
	m, cs := managerWith(t, pod)
	if err := m.reconcile(context.Background(), "default/web-1"); err != nil {
		t.Fatal(err)
	}
	var del k8stesting.DeleteActionImpl
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			del = d
		}
	}
	opts := del.GetDeleteOptions()
	if del.GetName() != "web-1" || opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 ||
		opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != pod.UID {
		t.Fatalf("delete action %+v", del)
	}

	// Once the grace period is 0 the pod only waits for finalizers: no
	// second delete.
	pod.DeletionGracePeriodSeconds = new(int64(0))
	m2, cs2 := managerWith(t, pod)
	if err := m2.reconcile(context.Background(), "default/web-1"); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs2.Actions() {
		if a.GetVerb() == "delete" {
			t.Fatal("deleted twice")
		}
	}
}
