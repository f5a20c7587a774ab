package allocation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/api/v1beta1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pharos-lb/pharos/controller/allocation"
)

// ensureKubeSystem creates kube-system if the apiserver has not yet.
func ensureKubeSystem(t *testing.T) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createServiceLB plays K3s: it creates the DaemonSet that ServiceLB
// creates for a Service, with its name and labels. envtest runs no
// controller-manager, so it stays a bare object. uid is the Service's UID,
// or "" for a Service that does not exist yet.
func createServiceLB(t *testing.T, ns, name, uid string) *appsv1.DaemonSet {
	t.Helper()
	if len(uid) > 8 {
		uid = uid[:8]
	}
	dsName := strings.TrimSuffix("svclb-"+name+"-"+uid, "-")
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:      dsName,
			Namespace: "kube-system",
			Labels: map[string]string{
				allocation.ServiceLBLabelName:              name,
				allocation.ServiceLBLabelNamespace:         ns,
				"svccontroller.k3s.cattle.io/nodeselector": "false",
			},
		},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": dsName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
					"app":                              dsName,
					allocation.ServiceLBLabelName:      name,
					allocation.ServiceLBLabelNamespace: ns,
				}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "lb-tcp-80",
					Image: "rancher/klipper-lb:v0.4.9",
					Ports: []corev1.ContainerPort{{Name: "lb-tcp-80", ContainerPort: 80, HostPort: 80, Protocol: corev1.ProtocolTCP}},
				}}},
			},
		},
	}
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatalf("creating DaemonSet %s: %v", ds.Name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ds) })
	return ds
}

// writeNodeIPs plays ServiceLB writing its node addresses into the status.
func writeNodeIPs(t *testing.T, ns, name string, ips ...string) {
	t.Helper()
	for i := 0; ; i++ {
		s := getService(t, ns, name)
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		err := k8s.Status().Update(context.Background(), s)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			t.Fatalf("writing the status of %s/%s: %v", ns, name, err)
		}
	}
}

func TestServiceLBConflict(t *testing.T) {
	ensureKubeSystem(t)
	ns := testNamespace(t, nil)
	createPool(t, "servicelb", []string{"198.18.50.0/30"})
	startController(t, controllerOpts{})

	// Pharos serves the Service first; then K3s ServiceLB shows up for it.
	web := createService(t, ns, "web")
	waitIPs(t, ns, "web", "198.18.50.0")
	ds := createServiceLB(t, ns, "web", string(web.UID))
	c := waitReason(t, ns, "web", v1beta1.ReasonServiceLBConflict, "DaemonSet kube-system/"+ds.Name)
	if c.Status != metav1.ConditionFalse {
		t.Errorf("condition status %s", c.Status)
	}
	for _, want := range []string{"198.18.50.0 reserved", "--disable=servicelb", "--lb-class=pharos.io/lb", "spec.loadBalancerClass: pharos.io/lb"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("condition message %q lacks %q", c.Message, want)
		}
	}
	waitEvent(t, ns, "web", "Warning ServiceLBConflict: K3s ServiceLB also handles this Service (DaemonSet kube-system/"+ds.Name+")")
	for _, want := range []string{"--disable=servicelb", "--lb-class=pharos.io/lb"} {
		if countEvents(events(t, ns, "web"), want) != 1 {
			t.Errorf("no single event naming %q: %q", want, events(t, ns, "web"))
		}
	}
	// Writing the condition left the address and the pool annotation.
	s := getService(t, ns, "web")
	if got := ingressIPs(s); got != "198.18.50.0" {
		t.Errorf("Pharos changed the ingress to %q when ServiceLB appeared", got)
	}
	if s.Annotations[v1beta1.AnnotationAllocatedFromPool] != "servicelb" {
		t.Errorf("pool annotation changed: %v", s.Annotations)
	}

	// ServiceLB's pods become Ready: it writes its node addresses. Pharos
	// leaves them, and its event is not repeated, however often the
	// Service changes.
	writeNodeIPs(t, ns, "web", "198.18.96.11", "198.18.96.12")
	updateService(t, ns, "web", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "yes"} })
	consistently(t, 3*time.Second, func() string {
		s := getService(t, ns, "web")
		if got := ingressIPs(s); got != "198.18.96.11,198.18.96.12" {
			return fmt.Sprintf("ServiceLB's addresses were overwritten: %q", got)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated); c == nil || c.Reason != v1beta1.ReasonServiceLBConflict {
			return fmt.Sprintf("condition %+v", c)
		}
		if n := countEvents(events(t, ns, "web"), "ServiceLBConflict"); n != 1 {
			return fmt.Sprintf("%d ServiceLBConflict events, want 1", n)
		}
		return ""
	})

	// The address stays reserved for web meanwhile.
	createService(t, ns, "thief", annotate(v1beta1.AnnotationLoadBalancerIPs, "198.18.50.0"))
	waitReason(t, ns, "thief", "RequestedIPUnavailable", "held by Service "+ns+"/web")
	createService(t, ns, "other")
	waitIPs(t, ns, "other", "198.18.50.1")

	// A Service that ServiceLB handles from the start gets no address.
	createServiceLB(t, ns, "late", "")
	time.Sleep(500 * time.Millisecond) // the DaemonSet reaches the controller's cache first
	createService(t, ns, "late")
	waitReason(t, ns, "late", v1beta1.ReasonServiceLBConflict, "Pharos has no address reserved for it")
	consistently(t, time.Second, func() string {
		if got := ingressIPs(getService(t, ns, "late")); got != "" {
			return fmt.Sprintf("late got %q while ServiceLB handles it", got)
		}
		return ""
	})

	// The message's second fix needs a new Service: the apiserver refuses
	// a class on an existing LoadBalancer Service.
	s = getService(t, ns, "web")
	s.Spec.LoadBalancerClass = ptr.To("pharos.io/lb")
	if err := k8s.Update(context.Background(), s); err == nil || !strings.Contains(err.Error(), "loadBalancerClass") {
		t.Errorf("adding a class to an existing LoadBalancer Service: %v", err)
	}

	// K3s restarted with --disable=servicelb deletes its DaemonSets: Pharos
	// takes over and writes its address again.
	for _, name := range []string{ds.Name, "svclb-late"} {
		if err := k8s.Delete(context.Background(), &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	waitIPs(t, ns, "web", "198.18.50.0")
	waitReason(t, ns, "web", "Allocated", "198.18.50.0")
	waitIPs(t, ns, "late", "198.18.50.2")
	if got := ingressIPs(getService(t, ns, "thief")); got != "" {
		t.Errorf("thief got %q", got)
	}
}

func TestServiceLBIgnoredWithClass(t *testing.T) {
	ensureKubeSystem(t)
	ns := testNamespace(t, nil)
	createPool(t, "servicelb-class", []string{"198.18.52.0/30"})

	// ServiceLB ignores Services with a class; so does the detection.
	ctl := startController(t, controllerOpts{class: "pharos.io/lb"})
	createServiceLB(t, ns, "classy", "")
	time.Sleep(500 * time.Millisecond)
	createService(t, ns, "classy", withClass("pharos.io/lb"))
	waitIPs(t, ns, "classy", "198.18.52.0")
	waitReason(t, ns, "classy", "Allocated", "198.18.52.0")
	ctl.stop()

	// With detection off, a matching DaemonSet changes nothing either. The
	// address alone does not show it: with detection on, a Service that got
	// its address before the DaemonSet reached the cache keeps it, with the
	// reason ServiceLBConflict. So the DaemonSet comes first, and the reason
	// must be Allocated throughout.
	startController(t, controllerOpts{noServiceLB: true})
	createServiceLB(t, ns, "plain", "")
	time.Sleep(500 * time.Millisecond)
	createService(t, ns, "plain")
	waitIPs(t, ns, "plain", "198.18.52.1")
	waitReason(t, ns, "plain", "Allocated", "198.18.52.1")
	consistently(t, time.Second, func() string {
		s := getService(t, ns, "plain")
		if got := ingressIPs(s); got != "198.18.52.1" {
			return fmt.Sprintf("plain has %q", got)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, v1beta1.ConditionIPAllocated); c == nil || c.Reason == v1beta1.ReasonServiceLBConflict || c.Reason != "Allocated" {
			return fmt.Sprintf("with detection off, plain's condition is %+v, want reason Allocated", c)
		}
		return ""
	})
}
