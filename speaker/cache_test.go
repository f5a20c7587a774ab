package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimForCacheKeepsWhatTheSpeakerReads(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default",
			Annotations:   map[string]string{lastApplied: `{"big":"copy"}`, "pharos.io/allocated-from-pool": "lan"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.18.0.1"}}}},
	}
	if _, err := trimForCache(svc); err != nil {
		t.Fatal(err)
	}
	if svc.ManagedFields != nil || svc.Annotations[lastApplied] != "" {
		t.Errorf("managed fields or kubectl's copy kept: %+v", svc.ObjectMeta)
	}
	if svc.Annotations["pharos.io/allocated-from-pool"] != "lan" || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || svc.Status.LoadBalancer.Ingress[0].IP != "198.18.0.1" {
		t.Errorf("trimmed what the speaker reads: %+v", svc)
	}

	only := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{lastApplied: "{}"}}}
	_, _ = trimForCache(only)
	if only.Annotations != nil {
		t.Errorf("annotations %v, want none left", only.Annotations)
	}

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}},
		Spec:       corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{
			Images:     []corev1.ContainerImage{{Names: []string{"nginx"}, SizeBytes: 1}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.10"}},
		},
	}
	_, _ = trimForCache(node)
	if node.Status.Images != nil {
		t.Error("node images kept")
	}
	if node.Labels["zone"] != "a" || !node.Spec.Unschedulable || len(node.Status.Conditions) != 1 || len(node.Status.Addresses) != 1 {
		t.Errorf("trimmed what the speaker reads: %+v", node)
	}

	ready, nodeName := true, "n1"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.5"}, NodeName: &nodeName,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: "web-1"},
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}}}},
	}
	_, _ = trimForCache(es)
	ep := es.Endpoints[0]
	if ep.TargetRef != nil || ep.Hints != nil {
		t.Errorf("endpoint's target or hints kept: %+v", ep)
	}
	if ep.Addresses[0] != "198.18.1.5" || *ep.NodeName != "n1" || !*ep.Conditions.Ready || es.Labels[discoveryv1.LabelServiceName] != "web" {
		t.Errorf("trimmed what the speaker reads: %+v", es)
	}
}
