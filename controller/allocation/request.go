package allocation

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/pharos-lb/pharos/api/v1beta1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pharos-lb/pharos/internal/allocator"
	"github.com/pharos-lb/pharos/internal/config"
)

// annotation returns the value of a pharos.io annotation, or of one of its
// MetalLB aliases (v1beta1.Annotation); alias names the alias key used, if
// any.
func annotation(svc *corev1.Service, key string) (value, alias string, ok bool) {
	value, used, ok := v1beta1.Annotation(svc.Annotations, key)
	if used != key {
		alias = used
	}
	return value, alias, ok
}

// requestError is a Service whose request cannot be understood.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

// buildRequest turns a Service into an allocator request. aliases lists
// the MetalLB annotation keys it used, mapped to the pharos.io key to use.
func buildRequest(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, map[string]string, error) {
	req := allocator.Request{
		Key: svc.Namespace + "/" + svc.Name,
		Service: config.ServiceInfo{
			Namespace:       svc.Namespace,
			Labels:          svc.Labels,
			NamespaceLabels: nsLabels,
		},
		Policy: allocator.SingleStack,
	}
	aliases := map[string]string{}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			req.Families = append(req.Families, config.IPv6)
		} else {
			req.Families = append(req.Families, config.IPv4)
		}
	}
	if len(req.Families) == 0 {
		req.Families = []config.Family{config.IPv4}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		req.Policy = allocator.FamilyPolicy(*p)
	}

	if v, alias, ok := annotation(svc, v1beta1.AnnotationLoadBalancerIPs); ok {
		if alias != "" {
			aliases[alias] = v1beta1.AnnotationLoadBalancerIPs
		}
		if svc.Spec.LoadBalancerIP != "" {
			return req, aliases, &requestError{fmt.Sprintf("both spec.loadBalancerIP and annotation %s are set; keep only the annotation", v1beta1.AnnotationLoadBalancerIPs)}
		}
		for _, s := range strings.Split(v, ",") {
			ip, err := config.ParseAddress(s)
			if err != nil {
				return req, aliases, &requestError{fmt.Sprintf("annotation %s: %v; write one address per family, comma-separated", v1beta1.AnnotationLoadBalancerIPs, err)}
			}
			req.RequestedIPs = append(req.RequestedIPs, ip)
		}
	} else if svc.Spec.LoadBalancerIP != "" {
		ip, err := config.ParseAddress(svc.Spec.LoadBalancerIP)
		if err != nil {
			return req, aliases, &requestError{fmt.Sprintf("spec.loadBalancerIP: %v", err)}
		}
		req.RequestedIPs = []netip.Addr{ip}
	}
	if v, alias, ok := annotation(svc, v1beta1.AnnotationAddressPool); ok {
		if alias != "" {
			aliases[alias] = v1beta1.AnnotationAddressPool
		}
		if strings.TrimSpace(v) == "" {
			return req, aliases, &requestError{fmt.Sprintf("annotation %s is empty; name a pool or remove the annotation", v1beta1.AnnotationAddressPool)}
		}
		req.Pool = strings.TrimSpace(v)
	}
	if v, alias, ok := annotation(svc, v1beta1.AnnotationAllowSharedIP); ok {
		if alias != "" {
			aliases[alias] = v1beta1.AnnotationAllowSharedIP
		}
		req.SharingKey = v
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// The prefix keeps a Local Service without a selector from
		// matching Cluster Services, whose key is empty.
		req.BackendKey = "local:" + labels.Set(svc.Spec.Selector).String()
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		req.Ports = append(req.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	return req, aliases, nil
}

// statusIPs returns the addresses in the Service's status, sorted by the
// Service's family order.
func statusIPs(svc *corev1.Service) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue
		}
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			return nil, err
		}
		out = append(out, ip)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Is4() && !out[j].Is4() })
	return out, nil
}
