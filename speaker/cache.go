package main

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
)

// lastApplied is the annotation kubectl apply keeps a whole copy of the
// object in: often the largest part of a cached Service or EndpointSlice.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// trimForCache drops what no part of the speaker reads from the objects
// its informers keep: managed fields and kubectl's last applied copy on
// every object, the images and volumes a Node reports, and the hints and
// target references of endpoints. With 10,000 Services these are most of
// the speaker's memory. The speaker only ever writes a Service's status
// (a patch of its conditions), so the trimmed parts are never written
// back.
func trimForCache(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[lastApplied] != "" {
			delete(a, lastApplied)
			if len(a) == 0 {
				m.SetAnnotations(nil)
			}
		}
	}
	switch o := obj.(type) {
	case *corev1.Node:
		o.Status.Images = nil
		o.Status.VolumesAttached = nil
		o.Status.VolumesInUse = nil
		o.Status.NodeInfo = corev1.NodeSystemInfo{}
		o.Status.Capacity, o.Status.Allocatable = nil, nil
	case *discoveryv1.EndpointSlice:
		for i := range o.Endpoints {
			o.Endpoints[i].Hints = nil
			o.Endpoints[i].TargetRef = nil
			o.Endpoints[i].DeprecatedTopology = nil
		}
	}
	return obj, nil
}

var _ toolscache.TransformFunc = trimForCache
