package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAddressPoolSpec defines the addresses that Pharos may assign to
// LoadBalancer Services, and which Services may get them.
type IPAddressPoolSpec struct {
	// Addresses lists the addresses of the pool, each either a CIDR
	// ("198.18.100.0/24", "2001:db8:100::/64") or an inclusive range of one
	// family ("198.18.100.10-198.18.100.20"). IPv4 and IPv6 entries may be
	// mixed; a pool that holds both families can serve dual-stack Services.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=3
	// +kubebuilder:validation:items:MaxLength=96
	// +kubebuilder:validation:XValidation:rule="self.all(a, a.contains('/') ? (isCIDR(a) && cidr(a) == cidr(a).masked()) : (a.split('-').size() == 2 && isIP(a.split('-')[0].trim()) && isIP(a.split('-')[1].trim())))",message="each address must be a CIDR with no host bits set (198.18.100.0/24) or a range of two IPs (198.18.100.10-198.18.100.20)"
	// +listType=atomic
	Addresses []string `json:"addresses"`

	// AutoAssign lets Pharos pick addresses from this pool for Services that
	// do not request it. When false, the pool is used only by Services that
	// request one of its addresses or name it in pharos.io/address-pool.
	// +optional
	// +kubebuilder:default:=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs keeps IPv4 addresses that end in .0 or .255 out of
	// assignment, because some old client firmware treats them as broadcast
	// addresses.
	// +optional
	// +kubebuilder:default:=false
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// ServiceAllocation restricts the pool to some Services and orders it among
	// other pools. A pool without it serves every Service, after the pools
	// whose serviceAllocation matches.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts which Services a pool serves and orders the
// pool among the pools that match a Service.
type ServiceAllocation struct {
	// Priority orders the pools that match a Service: 1 is tried first,
	// then 2, and so on. 0 (or unset) means no priority: such pools come
	// after those with one. Ties are broken by pool name.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int `json:"priority,omitempty"`

	// Namespaces lists the namespaces whose Services may use the pool.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors select, by label, the namespaces whose Services may
	// use the pool. A Service matches when its namespace is listed in
	// namespaces or matched by any selector.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors select, by label, the Services that may use the pool.
	// When set together with namespaces or namespaceSelectors, a Service
	// must match both.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports the use of the pool and whether its spec is
// valid.
type IPAddressPoolStatus struct {
	// AssignedIPv4 counts the IPv4 addresses of the pool assigned to Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4"`
	// AssignedIPv6 counts the IPv6 addresses of the pool assigned to Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv4 counts the IPv4 addresses still free for assignment.
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4"`
	// AvailableIPv6 counts the IPv6 addresses still free for assignment,
	// capped at 9223372036854775807 for pools larger than that.
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6"`

	// ObservedGeneration is the generation of the spec that the counts and
	// conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold "Valid": False with the reason when the spec cannot be
	// used.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPAddressPool is a set of addresses that Pharos assigns to LoadBalancer
// Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp;ippool,categories=pharos
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Avoid Buggy IPs",type=boolean,JSONPath=`.spec.avoidBuggyIPs`,priority=1
// +kubebuilder:printcolumn:name="Assigned IPv4",type=integer,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=integer,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available IPv4",type=integer,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Available IPv6",type=integer,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPool.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}
