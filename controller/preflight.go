package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/pharos-lb/pharos/internal/kubecheck"
)

type preflightOptions struct {
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	// memberlistSecret is the Secret whose key the controller keeps;
	// empty when it does not.
	memberlistSecret string
	webhook          bool
	namespace        string
	secret           string
	configuration    string
}

// preflight checks the CRDs and the permissions the controller's code uses
// (the kubebuilder:rbac markers next to that code list the same ones), so
// that a broken install says what is missing instead of looping on 403s.
func preflight(cs kubernetes.Interface, o preflightOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kubecheck.Check(ctx, cs, kubecheck.Options{
		Component:   "pharos-controller",
		Resources:   kubecheck.PharosCRDs,
		CRDHint:     kubecheck.PharosCRDHint,
		Permissions: preflightPermissions(o),
		RBACHint:    "grant it to the controller's ServiceAccount (the Helm chart's ClusterRole and Role for the controller do; see config/rbac/)",
	})
}

// preflightPermissions lists what preflight checks.
func preflightPermissions(o preflightOptions) []kubecheck.Permission {
	perms := []kubecheck.Permission{
		{Verb: "list", Resource: "services", Why: "find LoadBalancer Services"},
		{Verb: "watch", Resource: "services", Why: "follow LoadBalancer Services"},
		{Verb: "update", Resource: "services", Subresource: "status", Why: "write the assigned addresses"},
		{Verb: "list", Resource: "namespaces", Why: "match pools' namespace selectors"},
		{Verb: "watch", Resource: "namespaces", Why: "match pools' namespace selectors"},
		{Verb: "list", Group: "pharos.io", Resource: "ipaddresspools", Why: "read the pools"},
		{Verb: "watch", Group: "pharos.io", Resource: "ipaddresspools", Why: "follow the pools"},
		{Verb: "update", Group: "pharos.io", Resource: "ipaddresspools", Subresource: "status", Why: "report pool usage and validity"},
		{Verb: "patch", Group: "pharos.io", Resource: "ipaddresspools", Why: "hold a pool in use with its finalizer until its Services release it"},
		{Verb: "list", Group: "pharos.io", Resource: "l2advertisements", Why: "validate L2Advertisements"},
		{Verb: "watch", Group: "pharos.io", Resource: "l2advertisements", Why: "follow L2Advertisements"},
		{Verb: "update", Group: "pharos.io", Resource: "l2advertisements", Subresource: "status", Why: "report L2Advertisement validity"},
		{Verb: "list", Group: "pharos.io", Resource: "bgppeers", Why: "validate BGPPeers"},
		{Verb: "watch", Group: "pharos.io", Resource: "bgppeers", Why: "follow BGPPeers"},
		{Verb: "update", Group: "pharos.io", Resource: "bgppeers", Subresource: "status", Why: "report BGPPeer validity"},
		{Verb: "list", Group: "pharos.io", Resource: "bgpadvertisements", Why: "validate BGPAdvertisements"},
		{Verb: "watch", Group: "pharos.io", Resource: "bgpadvertisements", Why: "follow BGPAdvertisements"},
		{Verb: "update", Group: "pharos.io", Resource: "bgpadvertisements", Subresource: "status", Why: "report BGPAdvertisement validity"},
		{Verb: "list", Group: "pharos.io", Resource: "communities", Why: "resolve BGPAdvertisements' community aliases"},
		{Verb: "watch", Group: "pharos.io", Resource: "communities", Why: "follow community aliases"},
		{Verb: "list", Group: "pharos.io", Resource: "bfdprofiles", Why: "check the BFDProfiles that BGPPeers name"},
		{Verb: "watch", Group: "pharos.io", Resource: "bfdprofiles", Why: "follow BFDProfiles"},
		{Verb: "create", Group: "events.k8s.io", Resource: "events", Why: "record events on Services"},
	}
	if o.leaderElect {
		for _, verb := range []string{"get", "create", "update"} {
			p := kubecheck.Permission{Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Namespace: o.leaseNamespace, Name: o.leaseName, Why: "elect the active replica"}
			if verb == "create" {
				p.Name = "" // a create request carries no name for RBAC to match
			}
			perms = append(perms, p)
		}
		perms = append(perms, kubecheck.Permission{Verb: "create", Resource: "events", Namespace: o.leaseNamespace, Why: "record leader elections on the Lease"})
	}
	if o.memberlistSecret != "" {
		for _, verb := range []string{"get", "update"} {
			perms = append(perms, kubecheck.Permission{Verb: verb, Resource: "secrets", Namespace: o.namespace, Name: o.memberlistSecret, Why: "generate the speakers' memberlist key (or pass --memberlist-secret= and provide the key yourself)"})
		}
	}
	if o.webhook {
		for _, verb := range []string{"get", "update"} {
			perms = append(perms,
				kubecheck.Permission{Verb: verb, Resource: "secrets", Namespace: o.namespace, Name: o.secret, Why: "keep the webhook certificate"},
				kubecheck.Permission{Verb: verb, Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: o.configuration, Why: "inject the webhook's CA bundle"},
			)
		}
	}
	return perms
}

// serviceLBDetection returns the namespace in which to watch K3s ServiceLB's
// DaemonSets: ns if the controller may list and watch DaemonSets there,
// else "" (detection off) with a warning that says how to turn it on. The
// detection is optional, and most clusters are not K3s: a missing Role
// must not keep the controller from assigning addresses.
func serviceLBDetection(cs kubernetes.Interface, ns string, warn func(msg string)) string {
	if ns == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	perms := []kubecheck.Permission{
		{Verb: "list", Group: "apps", Resource: "daemonsets", Namespace: ns},
		{Verb: "watch", Group: "apps", Resource: "daemonsets", Namespace: ns},
	}
	var missing []kubecheck.Permission
	err := kubecheck.Retry(ctx, kubecheck.RetryOptions{}, func(ctx context.Context) (err error) {
		missing, err = kubecheck.Missing(ctx, cs, perms)
		return err
	})
	if err != nil {
		warn("K3s ServiceLB detection off: " + err.Error())
		return ""
	}
	if len(missing) > 0 {
		warn(fmt.Sprintf("K3s ServiceLB detection off: %s may not %s; grant list and watch on daemonsets in %s (the Helm chart's Role %q does) or pass --servicelb-namespace= to silence this",
			kubecheck.Identity(ctx, cs), missing[0], ns, "<release>-controller-servicelb"))
		return ""
	}
	return ns
}
