package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DynamicASNMode accepts a peer's ASN without naming it.
// +kubebuilder:validation:Enum=internal;external
type DynamicASNMode string

const (
	// DynamicASNInternal accepts a peer in myASN (iBGP).
	DynamicASNInternal DynamicASNMode = "internal"
	// DynamicASNExternal accepts a peer in any ASN other than myASN (eBGP).
	DynamicASNExternal DynamicASNMode = "external"
)

// BGPPeerSpec is a BGP session that the selected nodes open to a router.
// Field names follow MetalLB's v1beta2 BGPPeer.
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="set exactly one of peerASN and dynamicASN"
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecret))",message="set at most one of password and passwordSecret"
type BGPPeerSpec struct {
	// MyASN is the nodes' AS number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// PeerASN is the router's AS number. Exactly one of peerASN and
	// dynamicASN is set.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	PeerASN uint32 `json:"peerASN,omitempty"`

	// DynamicASN accepts the router's ASN from its OPEN: "internal" (it
	// must equal myASN) or "external" (it must differ).
	// +optional
	DynamicASN DynamicASNMode `json:"dynamicASN,omitempty"`

	// PeerAddress is the router's address, IPv4 or IPv6.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=45
	PeerAddress string `json:"peerAddress"`

	// PeerPort is the router's TCP port.
	// +optional
	// +kubebuilder:default:=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort uint16 `json:"peerPort,omitempty"`

	// SourceAddress is the node's address the session comes from; by
	// default the kernel's choice. A node that lacks it does not peer.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	SourceAddress string `json:"sourceAddress,omitempty"`

	// RouterID is the BGP identifier (an IPv4 address); by default the
	// node's IPv4 InternalIP, or a hash of the node name on IPv6-only nodes.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	RouterID string `json:"routerID,omitempty"`

	// HoldTime is the BGP hold time: 0 or at least 3s (default 90s, or
	// three keepalives when only keepaliveTime is set).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the keepalive interval, at most the hold time
	// (default a third of it).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is the time between connection attempts, 1s to 65535s in
	// whole seconds (default 5s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// Password is the TCP MD5 password. Prefer passwordSecret: this field is
	// readable by anyone who may read BGPPeers.
	// +optional
	// +kubebuilder:validation:MaxLength=80
	Password string `json:"password,omitempty"`

	// PasswordSecret names a Secret of type kubernetes.io/basic-auth whose
	// key "password" holds the TCP MD5 password.
	// +optional
	PasswordSecret *corev1.SecretReference `json:"passwordSecret,omitempty"`

	// EBGPMultiHop lets an eBGP router be more than one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// BFDProfile names a BFDProfile: the session is then watched by BFD and
	// withdrawn within its detection time when the path fails.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EnableGracefulRestart asks the router to keep this node's routes while
	// its speaker restarts (RFC 4724).
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`

	// NodeSelectors limit the nodes that open this session; empty means
	// every node.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// DisableMP carries only the session's own address family (IPv4
	// prefixes over an IPv4 session, IPv6 over IPv6) instead of both over
	// one session (multiprotocol BGP).
	// +optional
	DisableMP bool `json:"disableMP,omitempty"`
}

// BGPPeerStatus reports whether the peer's spec is valid.
type BGPPeerStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions hold "Valid".
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BGPPeer is a router that the selected nodes peer with. Each node's
// sessions are reported in its BGPNodeStatus.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=pharos
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec,omitempty"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

// BGPAdvertisementSpec says which addresses are advertised by BGP, to which
// peers, from which nodes and with which attributes.
type BGPAdvertisementSpec struct {
	// AggregationLength advertises IPv4 addresses as prefixes of this
	// length (default 32). It may not be shorter than the pool's own
	// prefixes, or the prefix would cover addresses outside the pool.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is aggregationLength for IPv6 (default 128).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the LOCAL_PREF attribute, sent to iBGP peers only.
	// Advertisements of one prefix to one peer must agree on it.
	// +optional
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:Maximum=4294967295
	LocalPref *uint32 `json:"localPref,omitempty"`

	// Communities are attached to the routes: "65000:100" (standard),
	// "large:64512:1:2" (large), or the name of a Community alias.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Communities []string `json:"communities,omitempty"`

	// IPAddressPools names the pools whose addresses are advertised. With
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

	// ServiceSelectors limit the advertisement to Services with these
	// labels; only with the default aggregation lengths.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`

	// NodeSelectors limit the nodes that advertise; empty means every node.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers names the BGPPeers that receive the routes; empty means every
	// peer of the node.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Peers []string `json:"peers,omitempty"`
}

// BGPAdvertisementStatus reports whether the advertisement is valid.
type BGPAdvertisementStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions hold "Valid".
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BGPAdvertisement advertises the addresses of some pools by BGP.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=pharos
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Local Pref",type=integer,JSONPath=`.spec.localPref`,priority=1
// +kubebuilder:printcolumn:name="Communities",type=string,JSONPath=`.spec.communities`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPAdvertisementSpec   `json:"spec,omitempty"`
	Status BGPAdvertisementStatus `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisement.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

// CommunityAlias names a community value.
type CommunityAlias struct {
	// Name is what BGPAdvertisements write in spec.communities.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Value is "65000:100" or "large:64512:1:2".
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=40
	Value string `json:"value"`
}

// CommunitySpec lists community aliases.
type CommunitySpec struct {
	// Communities are the aliases.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// Community gives names to BGP community values.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=pharos
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CommunitySpec `json:"spec,omitempty"`
}

// CommunityList is a list of Community.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}

// BFDProfileSpec tunes Bidirectional Forwarding Detection for the BGP
// sessions that name the profile.
type BFDProfileSpec struct {
	// ReceiveInterval is the shortest interval, in milliseconds, at which
	// the node wants to receive control packets (default 300).
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	ReceiveInterval *uint32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the interval, in milliseconds, at which the node
	// sends control packets (default 300).
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is how many packets may be lost before the session
	// is declared down (default 3).
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`

	// PassiveMode waits for the router to start BFD. GoBGP's BFD has no
	// passive mode: a profile that sets it is refused with that reason.
	// +optional
	PassiveMode *bool `json:"passiveMode,omitempty"`

	// MinimumTTL drops BFD packets that arrive with a lower TTL. GoBGP's
	// BFD is single-hop (it sends TTL 255); only 254 or 255, or unset, is
	// accepted.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	MinimumTTL *uint32 `json:"minimumTtl,omitempty"`
}

// BFDProfile is a set of BFD timers that BGPPeers name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=pharos
// +kubebuilder:printcolumn:name="Receive",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Transmit",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BFDProfileSpec `json:"spec,omitempty"`
}

// BFDProfileList is a list of BFDProfile.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}

// BGPSessionStatus is one BGP session of a node, as its speaker sees it.
type BGPSessionStatus struct {
	// Peer is the BGPPeer's name.
	Peer string `json:"peer"`
	// PeerAddress is the router's address.
	PeerAddress string `json:"peerAddress"`
	// State is the BGP session state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string `json:"state"`
	// BFDState is Up, Down, Init or AdminDown; empty without BFD.
	// +optional
	BFDState string `json:"bfdState,omitempty"`
	// PrefixesSent counts the prefixes advertised to the peer.
	PrefixesSent int32 `json:"prefixesSent"`
	// PrefixesReceived counts the prefixes the peer sent.
	// +optional
	PrefixesReceived int32 `json:"prefixesReceived,omitempty"`
	// LastError is why the session last went down or failed to come up,
	// in GoBGP's words, or a configuration problem (a missing Secret).
	// +optional
	LastError string `json:"lastError,omitempty"`
	// Since is when the session entered its state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// BGPNodeStatusStatus lists a node's BGP sessions.
type BGPNodeStatusStatus struct {
	// Node is the node's name (also the object's name).
	Node string `json:"node,omitempty"`
	// Sessions are the node's BGP sessions, by peer name.
	// +optional
	// +listType=map
	// +listMapKey=peer
	Sessions []BGPSessionStatus `json:"sessions,omitempty"`
	// Established counts the sessions in state Established, as "n/m".
	// +optional
	Established string `json:"established,omitempty"`
	// Prefixes counts the distinct prefixes the node advertises.
	// +optional
	Prefixes int32 `json:"prefixes,omitempty"`
}

// BGPNodeStatus is written by the speaker of one node (its name is the
// node's): the node's BGP sessions, their state, BFD state, prefixes sent
// and last error. It answers "is my route out there?" per node.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpns,categories=pharos
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Established",type=string,JSONPath=`.status.established`
// +kubebuilder:printcolumn:name="Prefixes",type=integer,JSONPath=`.status.prefixes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPNodeStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status BGPNodeStatusStatus `json:"status,omitempty"`
}

// BGPNodeStatusList is a list of BGPNodeStatus.
//
// +kubebuilder:object:root=true
type BGPNodeStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPNodeStatus `json:"items"`
}
