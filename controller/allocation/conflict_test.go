package allocation_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// A status write that loses a race (409 Conflict) is retried with
// RequeueAfter, never with the deprecated Result.Requeue (which
// controller-runtime counts as result="requeue"), for the Service's
// status, its clearing, and the pool's status alike.
func TestStatusConflictsRetried(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "conflicts", []string{"198.18.64.0/30"})
	// conflicts[kind] is how many more status writes of that kind fail.
	var svcConflicts, poolConflicts atomic.Int64
	var injected atomic.Int64
	intercept := &interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			var left *atomic.Int64
			switch o := obj.(type) {
			case *corev1.Service:
				if o.Namespace == ns {
					left = &svcConflicts
				}
			case *v1beta1.IPAddressPool:
				if o.Name == "conflicts" {
					left = &poolConflicts
				}
			}
			if left != nil && left.Add(-1) >= 0 {
				injected.Add(1)
				return apierrors.NewConflict(corev1.Resource("services"), obj.GetName(), errors.New("injected by the test"))
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	}
	requeues := func() float64 {
		return counter(t, "controller_runtime_reconcile_total", map[string]string{"controller": "service", "result": "requeue"}) +
			counter(t, "controller_runtime_reconcile_total", map[string]string{"controller": "ipaddresspool", "result": "requeue"})
	}
	before := requeues()
	svcConflicts.Store(2)
	poolConflicts.Store(2)
	startController(t, controllerOpts{intercept: intercept})

	createService(t, ns, "web")
	waitIPs(t, ns, "web", "198.18.64.0")
	waitReason(t, ns, "web", "Allocated", "198.18.64.0")
	eventually(t, waitTime, func() string {
		if st := poolStatus(t, "conflicts"); st.AssignedIPv4 != 1 {
			return fmt.Sprintf("pool status %+v, want 1 IPv4 address assigned", st)
		}
		return ""
	})

	// Clearing the status of a Service that is no longer a LoadBalancer.
	svcConflicts.Store(2)
	updateService(t, ns, "web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.Ports[0].NodePort = 0
		s.Spec.AllocateLoadBalancerNodePorts = nil
		s.Spec.ExternalTrafficPolicy = ""
	})
	eventually(t, waitTime, func() string {
		s := getService(t, ns, "web")
		if ingressIPs(s) != "" || meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated) != nil {
			return fmt.Sprintf("status not cleared: %+v", s.Status)
		}
		return ""
	})

	if n := injected.Load(); n != 6 {
		t.Errorf("%d conflicts injected, want 6: the test did not exercise every write", n)
	}
	if d := requeues() - before; d != 0 {
		t.Errorf("%v reconciles ended with the deprecated Result.Requeue", d)
	}
}
