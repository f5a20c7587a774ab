package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/inspect"
)

// speakerPods selects the speakers' pods, as the chart labels them.
var speakerPods = client.MatchingLabels{"app.kubernetes.io/name": "pharos", "app.kubernetes.io/component": "speaker"}

func (o *options) client() (client.Client, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1beta1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// namespace is the namespace of -n, or the kubeconfig's.
func (o *options) namespace() (string, error) {
	ns, _, err := o.kube.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// readCluster lists everything inspect needs.
func (o *options) readCluster(ctx context.Context) (*inspect.Cluster, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	cl := &inspect.Cluster{LoadBalancerClass: o.lbClass}
	var (
		svcs   corev1.ServiceList
		slices discoveryv1.EndpointSliceList
		nodes  corev1.NodeList
		nss    corev1.NamespaceList
		pools  v1beta1.IPAddressPoolList
		l2     v1beta1.L2AdvertisementList
		peers  v1beta1.BGPPeerList
		advs   v1beta1.BGPAdvertisementList
		comms  v1beta1.CommunityList
		bfds   v1beta1.BFDProfileList
		nstat  v1beta1.BGPNodeStatusList
	)
	for _, l := range []client.ObjectList{&svcs, &slices, &nodes, &nss, &pools, &l2, &peers, &advs, &comms, &bfds, &nstat} {
		if err := c.List(ctx, l); err != nil {
			return nil, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	cl.Services, cl.EndpointSlices, cl.Nodes, cl.Namespaces = svcs.Items, slices.Items, nodes.Items, nss.Items
	cl.Pools, cl.L2Advertisements, cl.BGPPeers, cl.BGPAdvertisements = pools.Items, l2.Items, peers.Items, advs.Items
	cl.Communities, cl.BFDProfiles, cl.BGPNodeStatuses = comms.Items, bfds.Items, nstat.Items
	// Speaker pods say which nodes run a speaker. Without them (speakers
	// outside pods, or no right to list pods), every node is taken to.
	var pods corev1.PodList
	if err := c.List(ctx, &pods, speakerPods); err == nil && len(pods.Items) > 0 {
		cl.SpeakerNodes = map[string]bool{}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" && podReady(&p) {
				cl.SpeakerNodes[p.Spec.NodeName] = true
			}
		}
	} else if err != nil && !apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("listing the speaker pods: %w", err)
	}
	return cl, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// print writes v as -o asks: its String() for the table, or JSON or YAML.
func (o *options) print(w io.Writer, v fmt.Stringer) error {
	switch o.output {
	case "", "table", "wide":
		_, err := fmt.Fprint(w, tabulate(v.String()))
		return err
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q: use table, json or yaml", o.output)
}
