package inspect

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// StatusReport is `kubectl pharos status`: the pools' usage and the
// Services' addresses.
type StatusReport struct {
	Pools    []PoolUsage     `json:"pools"`
	Services []ServiceStatus `json:"services"`
}

// PoolUsage is one pool's use in one family.
type PoolUsage struct {
	Pool   string `json:"pool"`
	Family string `json:"family"`
	InUse  int64  `json:"inUse"`
	Free   int64  `json:"free"`
	// Valid is false when the controller refuses the pool's spec;
	// Problem says why.
	Valid   bool   `json:"valid"`
	Problem string `json:"problem,omitempty"`
}

// Size is the pool's assignable addresses in the family (free is capped
// for huge IPv6 pools, so the sum is too).
func (u PoolUsage) Size() int64 { return u.InUse + u.Free }

// Bar draws the usage as width cells, for example "[####------]".
func (u PoolUsage) Bar(width int) string {
	filled := 0
	if size := u.Size(); size > 0 {
		filled = int((u.InUse*int64(width) + size - 1) / size)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

// ServiceStatus is one Service the controller handles.
type ServiceStatus struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"`
	Pool      string   `json:"pool,omitempty"`
	// Protocol is layer2, bgp, or both ("layer2+bgp").
	Protocol string `json:"protocol,omitempty"`
	// Nodes announce the addresses: the layer-2 owner and the BGP nodes.
	Nodes []string `json:"nodes,omitempty"`
	// Health is "Announced" when every address is announced; otherwise the
	// reason from the Service's conditions (Pending, NoMatchingPool,
	// NoEndpoints, ...).
	Health string `json:"health"`
	// Message is the condition message behind a Health that is not
	// Announced.
	Message string `json:"message,omitempty"`
}

// Status computes the report.
func Status(c *Cluster) StatusReport {
	var r StatusReport
	for i := range c.Pools {
		p := &c.Pools[i]
		valid, problem := true, ""
		if cond := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionValid); cond != nil && cond.Status == metav1.ConditionFalse {
			valid, problem = false, cond.Message
		}
		v4, v6 := families(p)
		if v4 || (!v6 && !valid) {
			r.Pools = append(r.Pools, PoolUsage{Pool: p.Name, Family: "IPv4", InUse: p.Status.AssignedIPv4, Free: p.Status.AvailableIPv4, Valid: valid, Problem: problem})
		}
		if v6 {
			r.Pools = append(r.Pools, PoolUsage{Pool: p.Name, Family: "IPv6", InUse: p.Status.AssignedIPv6, Free: p.Status.AvailableIPv6, Valid: valid, Problem: problem})
		}
	}
	sort.SliceStable(r.Pools, func(i, j int) bool { return r.Pools[i].Pool < r.Pools[j].Pool })
	st := c.state()
	for i := range c.Services {
		svc := &c.Services[i]
		if !c.handled(svc) {
			continue
		}
		row := ServiceStatus{Namespace: svc.Namespace, Name: svc.Name, Pool: svc.Annotations[v1beta1.AnnotationAllocatedFromPool]}
		owners := L2Owners(svc)
		l2, bgp := false, false
		nodes := map[string]bool{}
		for _, ip := range addresses(svc) {
			row.Addresses = append(row.Addresses, ip.String())
			a := st.Lookup(ip)
			if a == nil {
				continue
			}
			if n := l2Node(a, owners); n != "" {
				l2 = true
				nodes[n] = true
			}
			if len(a.BGP.Advertisements) > 0 {
				bgp = true
				for _, n := range a.BGP.Nodes {
					nodes[n] = true
				}
			}
		}
		switch {
		case l2 && bgp:
			row.Protocol = "layer2+bgp"
		case l2:
			row.Protocol = "layer2"
		case bgp:
			row.Protocol = "bgp"
		}
		for n := range nodes {
			row.Nodes = append(row.Nodes, n)
		}
		sort.Strings(row.Nodes)
		row.Health, row.Message = health(svc)
		r.Services = append(r.Services, row)
	}
	sort.Slice(r.Services, func(i, j int) bool {
		a, b := r.Services[i], r.Services[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	return r
}

// l2Node is the node announcing the address by layer 2: the one the
// Announced condition names, else the one the election picks.
func l2Node(a *speaker.Address, owners map[netip.Addr]Owner) string {
	if o, ok := owners[a.IP]; ok {
		return o.Node
	}
	return a.L2Node()
}

// health words the Service's state from its conditions.
func health(svc *corev1.Service) (string, string) {
	if len(svc.Status.LoadBalancer.Ingress) == 0 {
		if c := condition(svc, v1beta1.ConditionIPAllocated); c != nil && c.Status != metav1.ConditionTrue {
			return c.Reason, c.Message
		}
		return "Pending", "no address yet, and no IPAllocated condition: is the Pharos controller running, and does it handle this Service's loadBalancerClass?"
	}
	c := condition(svc, v1beta1.ConditionAnnounced)
	switch {
	case c == nil:
		return "Unknown", "no Announced condition yet: are the speakers running?"
	case c.Status == metav1.ConditionTrue && c.Reason == v1beta1.ReasonAnnounced:
		return v1beta1.ReasonAnnounced, ""
	}
	return c.Reason, c.Message
}

// families reports which families the pool's spec holds, from its
// addresses as written (a pool the controller refuses still shows).
func families(p *v1beta1.IPAddressPool) (v4, v6 bool) {
	for _, a := range p.Spec.Addresses {
		if strings.Contains(a, ":") {
			v6 = true
		} else {
			v4 = true
		}
	}
	return v4, v6
}

// String renders the report as the plugin's default table.
func (r StatusReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "POOL\tFAMILY\tUSAGE\tIN USE\tFREE\tVALID\n")
	for _, p := range r.Pools {
		valid := "yes"
		if !p.Valid {
			valid = "no: " + p.Problem
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%d\t%s\n", p.Pool, p.Family, p.Bar(20), p.InUse, p.Free, valid)
	}
	fmt.Fprintf(&b, "\nSERVICE\tADDRESSES\tPOOL\tPROTOCOL\tNODES\tHEALTH\n")
	for _, s := range r.Services {
		h := s.Health
		if s.Message != "" {
			h += ": " + s.Message
		}
		fmt.Fprintf(&b, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, dash(strings.Join(s.Addresses, ",")), dash(s.Pool),
			dash(s.Protocol), dash(strings.Join(s.Nodes, ",")), h)
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
