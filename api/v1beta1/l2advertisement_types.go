package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which addresses are announced by layer 2 (ARP
// for IPv4, NDP for IPv6), from which nodes and on which interfaces.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools whose addresses are announced. With
	// neither ipAddressPools nor ipAddressPoolSelectors, every pool is.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools by label, in addition to those
	// named in ipAddressPools.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that may announce, by label. Empty
	// means every node.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Interfaces limit the announcement to these network interfaces of the
	// nodes. Empty means every interface whose subnet holds the address.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[^/:\s]+$`
	Interfaces []string `json:"interfaces,omitempty"`
}

// L2AdvertisementStatus reports whether the advertisement is valid.
type L2AdvertisementStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold "Valid".
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2Advertisement announces the addresses of some pools by ARP and NDP.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=pharos
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Pool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`,priority=1
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L2AdvertisementSpec   `json:"spec,omitempty"`
	Status L2AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisement.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
