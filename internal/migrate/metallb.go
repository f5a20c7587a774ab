package migrate

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Local mirrors of MetalLB's CRDs (go.universe.tf/metallb/api v1beta1 and
// v1beta2). They are copied field by field, with MetalLB's JSON names,
// rather than imported: importing MetalLB would pull its whole dependency
// tree (FRR, controller-runtime of its own version) into kubectl-pharos for
// a few structs. Decoding strictly into them is what turns a field MetalLB
// has and this package does not know about into a Problem instead of a
// silent drop, so every spec field MetalLB defines must be here.
//
// Status is kept as raw JSON: it is written by MetalLB, never converted,
// and a status field added by a newer MetalLB is not a reason to refuse
// the object.

// MetalLB's API group and versions.
const (
	metallbGroup   = "metallb.io"
	metallbV1beta1 = metallbGroup + "/v1beta1"
	metallbV1beta2 = metallbGroup + "/v1beta2"
)

// metallbIPAddressPool is metallb.io/v1beta1 IPAddressPool.
type metallbIPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Addresses         []string `json:"addresses"`
		AutoAssign        *bool    `json:"autoAssign,omitempty"`
		AvoidBuggyIPs     bool     `json:"avoidBuggyIPs,omitempty"`
		ServiceAllocation *struct {
			Priority           int                    `json:"priority,omitempty"`
			Namespaces         []string               `json:"namespaces,omitempty"`
			NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
			ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
		} `json:"serviceAllocation,omitempty"`
	} `json:"spec"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbL2Advertisement is metallb.io/v1beta1 L2Advertisement.
type metallbL2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		IPAddressPools         []string                `json:"ipAddressPools,omitempty"`
		IPAddressPoolSelectors []metav1.LabelSelector  `json:"ipAddressPoolSelectors,omitempty"`
		NodeSelectors          []metav1.LabelSelector  `json:"nodeSelectors,omitempty"`
		Interfaces             []string                `json:"interfaces,omitempty"`
		ServiceSelectors       []metav1.LabelSelector  `json:"serviceSelectors,omitempty"`
		PreferredNodeSelectors []metallbPreferredNodes `json:"preferredNodeSelectors,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbPreferredNodes is MetalLB's PreferredNodeSelector: a weighted
// soft preference in the layer 2 election.
type metallbPreferredNodes struct {
	Weight     int32                `json:"weight"`
	Preference metav1.LabelSelector `json:"preference"`
}

// metallbBGPAdvertisement is metallb.io/v1beta1 BGPAdvertisement.
type metallbBGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		AggregationLength   *int32 `json:"aggregationLength,omitempty"`
		AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
		// LocalPref is not a pointer in MetalLB: 0 means unset.
		LocalPref              uint32                 `json:"localPref,omitempty"`
		Communities            []string               `json:"communities,omitempty"`
		IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
		IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
		NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
		Peers                  []string               `json:"peers,omitempty"`
		ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbCommunity is metallb.io/v1beta1 Community.
type metallbCommunity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Communities []struct {
			Name  string `json:"name,omitempty"`
			Value string `json:"value,omitempty"`
		} `json:"communities,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbBFDProfile is metallb.io/v1beta1 BFDProfile.
type metallbBFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
		TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
		DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
		EchoInterval     *uint32 `json:"echoInterval,omitempty"`
		EchoMode         *bool   `json:"echoMode,omitempty"`
		PassiveMode      *bool   `json:"passiveMode,omitempty"`
		MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbBGPPeerV1beta1 is metallb.io/v1beta1 BGPPeer (deprecated by
// MetalLB, still served).
type metallbBGPPeerV1beta1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		MyASN      uint32 `json:"myASN"`
		ASN        uint32 `json:"peerASN"`
		Address    string `json:"peerAddress"`
		SrcAddress string `json:"sourceAddress,omitempty"`
		Port       uint16 `json:"peerPort,omitempty"`
		// HoldTime and KeepaliveTime are values in MetalLB; pointers
		// here tell "unset" from an explicit "0s" (no keepalives).
		HoldTime      *metav1.Duration      `json:"holdTime,omitempty"`
		KeepaliveTime *metav1.Duration      `json:"keepaliveTime,omitempty"`
		RouterID      string                `json:"routerID,omitempty"`
		NodeSelectors []metallbNodeSelector `json:"nodeSelectors,omitempty"`
		Password      string                `json:"password,omitempty"`
		BFDProfile    string                `json:"bfdProfile,omitempty"`
		EBGPMultiHop  bool                  `json:"ebgpMultiHop,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// metallbNodeSelector is v1beta1 BGPPeer's own selector type, which
// MetalLB converts to a LabelSelector.
type metallbNodeSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	} `json:"matchExpressions,omitempty"`
}

// metallbBGPPeerV1beta2 is metallb.io/v1beta2 BGPPeer, MetalLB's storage
// version.
type metallbBGPPeerV1beta2 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		MyASN                  uint32                 `json:"myASN"`
		ASN                    uint32                 `json:"peerASN,omitempty"`
		LocalASN               uint32                 `json:"localASN,omitempty"`
		DynamicASN             string                 `json:"dynamicASN,omitempty"`
		Address                string                 `json:"peerAddress,omitempty"`
		Interface              string                 `json:"interface,omitempty"`
		SrcAddress             string                 `json:"sourceAddress,omitempty"`
		Port                   uint16                 `json:"peerPort,omitempty"`
		HoldTime               *metav1.Duration       `json:"holdTime,omitempty"`
		KeepaliveTime          *metav1.Duration       `json:"keepaliveTime,omitempty"`
		ConnectTime            *metav1.Duration       `json:"connectTime,omitempty"`
		RouterID               string                 `json:"routerID,omitempty"`
		NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
		Password               string                 `json:"password,omitempty"`
		PasswordSecret         corev1.SecretReference `json:"passwordSecret,omitempty"`
		BFDProfile             string                 `json:"bfdProfile,omitempty"`
		EnableGracefulRestart  bool                   `json:"enableGracefulRestart,omitempty"`
		EBGPMultiHop           bool                   `json:"ebgpMultiHop,omitempty"`
		VRFName                string                 `json:"vrf,omitempty"`
		DisableMP              bool                   `json:"disableMP,omitempty"`
		DualStackAddressFamily bool                   `json:"dualStackAddressFamily,omitempty"`
	} `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
}

// v1beta2PeerFields are the spec fields of a v1beta2 BGPPeer that v1beta1
// lacks, to tell a user who wrote one in a v1beta1 peer which version has it.
var v1beta2PeerFields = map[string]bool{
	"localASN": true, "dynamicASN": true, "interface": true, "connectTime": true, "passwordSecret": true,
	"enableGracefulRestart": true, "vrf": true, "disableMP": true, "dualStackAddressFamily": true,
}

// metallbStatusKinds are objects MetalLB writes to report its state
// (ServiceL2Status, ServiceBGPStatus, ConfigurationState): nothing in them
// is configuration, so they are skipped with a warning.
var metallbStatusKinds = map[string]bool{
	"ServiceL2Status":    true,
	"ServiceBGPStatus":   true,
	"ConfigurationState": true,
}
