package cluster

import discoveryv1 "k8s.io/api/discovery/v1"

// ReadyEndpoints counts the ready endpoints of a Service's EndpointSlices
// by address type.
func ReadyEndpoints(slices []discoveryv1.EndpointSlice) map[discoveryv1.AddressType]int {
	ready := map[discoveryv1.AddressType]int{}
	for _, sl := range slices {
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready[sl.AddressType]++
			}
		}
	}
	return ready
}
