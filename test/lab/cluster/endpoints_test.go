package cluster

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestReadyEndpoints(t *testing.T) {
	yes, no := true, false
	ep := func(r *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: r}}
	}
	got := ReadyEndpoints([]discoveryv1.EndpointSlice{
		{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep(&yes), ep(&no), ep(nil), ep(&yes)}},
		{AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []discoveryv1.Endpoint{ep(&yes)}},
	})
	if got[discoveryv1.AddressTypeIPv4] != 2 || got[discoveryv1.AddressTypeIPv6] != 1 {
		t.Errorf("ready endpoints %v, want 2 IPv4 and 1 IPv6", got)
	}
}
