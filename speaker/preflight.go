package main

import (
	"context"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pharos-lb/pharos/internal/kubecheck"
)

// preflight checks the CRDs and the permissions the speaker's code uses
// (the kubebuilder:rbac markers in speaker.go list the same ones), so that
// a broken install says what is missing instead of looping on 403s.
func preflight(cfg *rest.Config, secretRef string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	secretNS, secretName, _ := strings.Cut(secretRef, "/")
	perms := []kubecheck.Permission{
		{Verb: "list", Resource: "services", Why: "find the addresses to announce"},
		{Verb: "watch", Resource: "services", Why: "follow the addresses to announce"},
		{Verb: "patch", Resource: "services", Subresource: "status", Why: "report the Announced condition"},
		{Verb: "list", Resource: "nodes", Why: "know which nodes may announce"},
		{Verb: "watch", Resource: "nodes", Why: "follow node readiness and labels"},
		{Verb: "get", Resource: "secrets", Namespace: secretNS, Name: secretName, Why: "read the memberlist key"},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "announce only Services with ready endpoints"},
		{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "follow endpoints"},
		{Verb: "list", Group: "pharos.io", Resource: "ipaddresspools", Why: "read the pools"},
		{Verb: "watch", Group: "pharos.io", Resource: "ipaddresspools", Why: "follow the pools"},
		{Verb: "list", Group: "pharos.io", Resource: "l2advertisements", Why: "read the L2Advertisements"},
		{Verb: "watch", Group: "pharos.io", Resource: "l2advertisements", Why: "follow the L2Advertisements"},
		{Verb: "create", Group: "events.k8s.io", Resource: "events", Why: "record events on Services"},
		{Verb: "list", Group: "pharos.io", Resource: "bgppeers", Why: "read the BGP peers"},
		{Verb: "watch", Group: "pharos.io", Resource: "bgppeers", Why: "follow the BGP peers"},
		{Verb: "list", Group: "pharos.io", Resource: "bgpadvertisements", Why: "read the BGPAdvertisements"},
		{Verb: "watch", Group: "pharos.io", Resource: "bgpadvertisements", Why: "follow the BGPAdvertisements"},
		{Verb: "list", Group: "pharos.io", Resource: "communities", Why: "resolve community aliases"},
		{Verb: "list", Group: "pharos.io", Resource: "bfdprofiles", Why: "read the BFD profiles"},
		{Verb: "create", Group: "pharos.io", Resource: "bgpnodestatuses", Why: "report this node's BGP sessions"},
		{Verb: "update", Group: "pharos.io", Resource: "bgpnodestatuses", Why: "report this node's BGP sessions"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kubecheck.Check(ctx, cs, kubecheck.Options{
		Component:   "pharos-speaker",
		Resources:   kubecheck.PharosCRDs,
		CRDHint:     kubecheck.PharosCRDHint,
		Permissions: perms,
		RBACHint:    "grant it to the speaker's ServiceAccount (the Helm chart's ClusterRole and Role for the speaker do; see config/rbac/speaker/)",
	})
}
