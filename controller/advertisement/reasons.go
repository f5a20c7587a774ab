package advertisement

// The reasons of the Valid condition of BGPPeers and BGPAdvertisements, and
// of the Warning events that repeat them.
const (
	// ReasonValid: the object is used as it is.
	ReasonValid = "Valid"
	// ReasonInvalidSpec: the spec cannot be used (Valid=False); the
	// speakers leave the object out.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonPoolMissing: a pool named in spec.ipAddressPools does not exist
	// yet (Valid=True: it is advertised once it does).
	ReasonPoolMissing = "PoolMissing"
	// ReasonBFDProfileMissing: the BFDProfile a BGPPeer names does not
	// exist or is invalid (Valid=True: the session runs, without BFD).
	ReasonBFDProfileMissing = "BFDProfileMissing"
	// ReasonLocalPrefConflict: another BGPAdvertisement sends the same
	// prefixes to the same peers with another localPref (Valid=False: the
	// speakers leave this advertisement out).
	ReasonLocalPrefConflict = "LocalPrefConflict"
	// ReasonAggregationOutsidePool: aggregating a selected pool's addresses
	// to the advertisement's lengths gives prefixes that cover addresses
	// outside the pool (Valid=False).
	ReasonAggregationOutsidePool = "AggregationOutsidePool"
)
