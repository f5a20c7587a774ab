package allocation_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// createServices creates n Services with 8 concurrent clients.
func createServices(t *testing.T, ns string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := k8s.Create(context.Background(), newService(ns, fmt.Sprintf("svc-%04d", i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// assignedIPs lists the namespace's Services and returns name -> ingress.
func assignedIPs(t *testing.T, ns string) map[string]string {
	t.Helper()
	var list corev1.ServiceList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range list.Items {
		out[list.Items[i].Name] = ingressIPs(&list.Items[i])
	}
	return out
}

func waitAllAssigned(t *testing.T, ns string, n int, timeout time.Duration) map[string]string {
	t.Helper()
	var got map[string]string
	eventually(t, timeout, func() string {
		got = assignedIPs(t, ns)
		done := 0
		for _, ip := range got {
			if ip != "" {
				done++
			}
		}
		if done != n {
			return fmt.Sprintf("%d of %d Services have an address", done, n)
		}
		return ""
	})
	return got
}

func TestRestartWith1000ServicesChangesNoIP(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "restart", []string{"198.18.32.0/21"})
	first := startController(t, controllerOpts{})
	const n = 1000
	createServices(t, ns, n)
	before := waitAllAssigned(t, ns, n, 3*time.Minute)
	seen := map[string]string{}
	for name, ip := range before {
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
	first.stop()

	// Free an address in the middle while the controller is down, so that
	// a controller that did not restore state would hand it out again.
	if err := k8s.Delete(context.Background(), getService(t, ns, "svc-0500")); err != nil {
		t.Fatal(err)
	}
	freed := before["svc-0500"]
	delete(before, "svc-0500")

	startController(t, controllerOpts{})
	createService(t, ns, "newcomer")
	s := waitIPs(t, ns, "newcomer", freed)
	_ = s
	after := assignedIPs(t, ns)
	changed := 0
	for name, ip := range before {
		if after[name] != ip {
			changed++
			t.Errorf("%s moved from %s to %s", name, ip, after[name])
		}
	}
	if changed > 0 {
		t.Fatalf("%d Services changed address after a restart", changed)
	}
}

func TestLeaderHandover(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "leader", []string{"198.18.40.0/24"})
	a := startController(t, controllerOpts{leaderElect: true, identity: "replica-a"})
	select {
	case <-a.mgr.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("replica a was not elected")
	}
	b := startController(t, controllerOpts{leaderElect: true, identity: "replica-b"})
	createService(t, ns, "one")
	waitIPs(t, ns, "one", "198.18.40.0")
	select {
	case <-b.mgr.Elected():
		t.Fatal("two replicas lead at once")
	case <-time.After(2 * time.Second):
	}
	holder := func() string {
		var l coordinationv1.Lease
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "pharos-controller-test"}, &l); err != nil {
			return err.Error()
		}
		if l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	leaderA := holder()

	start := time.Now()
	a.stop()
	select {
	case <-b.mgr.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("replica b did not take over")
	}
	t.Logf("hand-over took %s", time.Since(start))
	if h := holder(); h == leaderA || h == "" {
		t.Fatalf("lease holder %q did not change from %q", h, leaderA)
	}
	createService(t, ns, "two")
	waitIPs(t, ns, "two", "198.18.40.1")
	if got := ingressIPs(getService(t, ns, "one")); got != "198.18.40.0" {
		t.Fatalf("hand-over moved one to %q", got)
	}
}
