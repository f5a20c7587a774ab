// Package kubecheck checks, before a component starts its watches, that the
// API it needs is there: the CRDs and the permissions. Without it a missing
// CRD or RBAC rule shows only as an endless stream of 404s and 403s from
// informers; with it the component says which CRD or permission it lacks
// and how to get it, then stops.
package kubecheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Resource is an API resource a component watches, e.g. ipaddresspools in
// pharos.io/v1beta1.
type Resource struct {
	GroupVersion string
	Resource     string
}

// PharosCRDs are the CRDs that the controller and the speakers watch, and
// PharosCRDHint says how to install them.
var PharosCRDs = []Resource{
	{GroupVersion: "pharos.io/v1beta1", Resource: "ipaddresspools"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "l2advertisements"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "bgppeers"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "bgpadvertisements"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "communities"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "bfdprofiles"},
	{GroupVersion: "pharos.io/v1beta1", Resource: "bgpnodestatuses"},
}

// PharosCRDHint says how to install PharosCRDs.
const PharosCRDHint = "install Pharos's CRDs (helm installs them from the chart's crds/ directory; or kubectl apply -f config/crd/bases)"

// Permission is one access a component needs, with the reason it needs it
// (shown to the user when it is missing).
type Permission struct {
	Verb        string
	Group       string
	Resource    string
	Subresource string
	// Namespace empty means cluster-wide (every namespace).
	Namespace string
	// Name narrows the check to one object, for rules with resourceNames.
	Name string
	Why  string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Group != "" {
		r += "." + p.Group
	}
	s := p.Verb + " " + r
	if p.Name != "" {
		s += fmt.Sprintf(" named %q", p.Name)
	}
	if p.Namespace != "" {
		s += " in namespace " + p.Namespace
	} else {
		s += " cluster-wide"
	}
	return s
}

// Options describe what to check and how to phrase the fix.
type Options struct {
	// Component names who is checking, e.g. "pharos-controller".
	Component string
	// Resources must be served by the apiserver.
	Resources []Resource
	// CRDHint says how to install missing CRDs.
	CRDHint string
	// Permissions must be allowed.
	Permissions []Permission
	// RBACHint says where the permissions are granted.
	RBACHint string
}

// Check returns nil if everything is in place, or one error that lists
// every missing CRD and permission.
func Check(ctx context.Context, cs kubernetes.Interface, o Options) error {
	// An apiserver that has just started answers before its RBAC
	// authorizer has loaded the roles: every access review would say "not
	// allowed". Until it reports ready, that is a transient state, not a
	// missing permission.
	if err := ready(ctx, cs); err != nil {
		return fmt.Errorf("%s: the apiserver is not ready yet: %w", o.Component, err)
	}
	var problems []string
	// /version is public; a cluster that hides it is not refused for that.
	if info, err := cs.Discovery().ServerVersion(); err != nil {
		if Transient(err) {
			return fmt.Errorf("%s: reading the Kubernetes version: %w", o.Component, err)
		}
	} else if ok, verr := versionAtLeast(info.GitVersion, MinKubernetes); verr == nil && !ok {
		problems = append(problems, fmt.Sprintf("Kubernetes %s is too old: Pharos needs %d.%d or newer (for the LoadBalancer status's ipMode)", info.GitVersion, MinKubernetes[0], MinKubernetes[1]))
	}
	for _, r := range o.Resources {
		list, err := cs.Discovery().ServerResourcesForGroupVersion(r.GroupVersion)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s: discovery of %s: %w", o.Component, r.GroupVersion, err)
		}
		found := false
		if list != nil {
			for _, ar := range list.APIResources {
				if ar.Name == r.Resource {
					found = true
				}
			}
		}
		if !found {
			group := r.GroupVersion
			if i := strings.Index(group, "/"); i >= 0 {
				group = group[:i]
			}
			problems = append(problems, fmt.Sprintf("the CRD %s.%s (%s) is not installed; %s", r.Resource, group, r.GroupVersion, o.CRDHint))
		}
	}

	missing, err := Missing(ctx, cs, o.Permissions)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Component, err)
	}
	// Who is asking matters only to the message about what it lacks.
	who := ""
	if len(missing) > 0 {
		who = Identity(ctx, cs)
	}
	for _, p := range missing {
		problems = append(problems, fmt.Sprintf("%s may not %s (needed to %s); %s", who, p, p.Why, o.RBACHint))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s cannot start:\n  - %s", o.Component, strings.Join(problems, "\n  - "))
}

// ready asks the apiserver's /readyz. A refusal to say (403: a cluster
// that hides it) counts as ready; the checks that follow tell the rest.
func ready(ctx context.Context, cs kubernetes.Interface) error {
	rc := cs.Discovery().RESTClient()
	if rc == nil {
		return nil
	}
	err := rc.Get().AbsPath("/readyz").Do(ctx).Error()
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return nil
	}
	return err
}

// Identity names the user the client authenticates as, quoted, for
// messages.
func Identity(ctx context.Context, cs kubernetes.Interface) string {
	if rev, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		return fmt.Sprintf("%q", rev.Status.UserInfo.Username)
	}
	return "this component's identity"
}

// Missing returns the permissions the client's identity lacks.
func Missing(ctx context.Context, cs kubernetes.Interface, perms []Permission) ([]Permission, error) {
	var missing []Permission
	for _, p := range perms {
		rev, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource, Namespace: p.Namespace, Name: p.Name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("cannot check permission %s: %w", p, err)
		}
		if !rev.Status.Allowed {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// Hint turns a 403 from a request into a message that names the missing
// permission and who grants it, instead of a bare "forbidden".
func Hint(err error, component, verb, resource, name string) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("the %s may not %s %s %q: grant it to its ServiceAccount (the Helm chart's Role and ClusterRole do): %w", component, verb, resource, name, err)
	}
	return fmt.Errorf("%s %s %q: %w", verb, resource, name, err)
}

// WriteTerminationMessage puts err where `kubectl describe pod` shows it
// (the container's terminationMessagePath), if that file exists.
func WriteTerminationMessage(err error) {
	const path = "/dev/termination-log"
	if err == nil {
		return
	}
	if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
		return
	}
	_ = os.WriteFile(path, []byte(err.Error()), 0o644)
}
