package webhook_test

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
	"github.com/pharos-lb/pharos/internal/certs"
)

// agreeCases are manifests applied in order. The CRDs' schema admits every
// object, so what refuses or warns is the webhook alone.
var agreeCases = []struct{ name, manifest string }{{
	name: "overlapping pools",
	manifest: `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [198.18.100.0/24]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: overlap}
spec: {addresses: [198.18.101.0/24, 198.18.100.128-198.18.100.200]}
`}, {
	name: "selector operators that do not exist",
	manifest: `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: picky}
spec:
  addresses: [198.18.102.0/28]
  serviceAllocation:
    namespaceSelectors: [{matchExpressions: [{key: team, operator: Near}]}]
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: picky}
spec:
  ipAddressPoolSelectors: [{matchExpressions: [{key: tier, operator: Sometimes}]}]
`}, {
	name: "an advertisement before its pool, a pool nothing announces",
	manifest: `apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: early}
spec: {ipAddressPools: [later]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: later}
spec: {addresses: [198.18.103.0/28]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: alone}
spec: {addresses: [198.18.104.0/28]}
`}, {
	name: "communities defined twice, a peer with a password and a missing BFD profile",
	manifest: `apiVersion: pharos.io/v1beta1
kind: Community
metadata: {name: a}
spec: {communities: [{name: no-export, value: "65535:65281"}]}
---
apiVersion: pharos.io/v1beta1
kind: Community
metadata: {name: b}
spec: {communities: [{name: no-export, value: "65000:1"}]}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: r1}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, password: hunter2, bfdProfile: fast}
`}}

// TestValidateAgreesWithTheWebhook: kubectl pharos validate (admit's
// ValidateFiles) refuses exactly what the webhook refuses through the real
// apiserver, with the same message, and warns exactly as it warns.
func TestValidateAgreesWithTheWebhook(t *testing.T) {
	serve(t, "pharos-webhook-agree", certs.Policy{}, admissionregistrationv1.Fail)
	ctx := context.Background()
	for _, tc := range agreeCases {
		t.Run(tc.name, func(t *testing.T) {
			lines, _ := admit.ValidateFiles([]admit.File{{Name: "f.yaml", Data: []byte(tc.manifest)}})
			var created []client.Object
			defer func() {
				for _, o := range created {
					_ = k8s.Delete(ctx, o)
				}
			}()
			for _, doc := range strings.Split(tc.manifest, "---\n") {
				obj := decodeObject(t, doc)
				kind := obj.GetObjectKind().GroupVersionKind().Kind // Create clears it
				warnings.take()
				err := k8s.Create(ctx, obj)
				got := warnings.take()
				var wantErr string
				var wantWarnings []string
				for _, l := range lines {
					if l.Kind != kind || l.Name != obj.GetName() {
						continue
					}
					if l.Err != nil {
						wantErr = l.Err.Error()
					} else {
						wantWarnings = append(wantWarnings, l.Warning)
					}
				}
				switch {
				case wantErr == "" && err != nil:
					t.Errorf("%s %s: the webhook refuses it (%v), validate admits it", kind, obj.GetName(), err)
				case wantErr != "" && err == nil:
					t.Errorf("%s %s: validate refuses it (%s), the webhook admits it", kind, obj.GetName(), wantErr)
				case wantErr != "" && !strings.Contains(err.Error(), wantErr):
					t.Errorf("%s %s: the webhook says\n  %v\nvalidate says\n  %s", kind, obj.GetName(), err, wantErr)
				}
				if err == nil {
					created = append(created, obj)
				}
				if strings.Join(got, "\n") != strings.Join(wantWarnings, "\n") {
					t.Errorf("%s %s: the webhook warns\n  %q\nvalidate warns\n  %q", kind, obj.GetName(), got, wantWarnings)
				}
			}
		})
	}
}

func decodeObject(t *testing.T, doc string) client.Object {
	t.Helper()
	var head struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		t.Fatal(err)
	}
	var obj client.Object
	switch head.Kind {
	case "IPAddressPool":
		obj = &v1beta1.IPAddressPool{}
	case "L2Advertisement":
		obj = &v1beta1.L2Advertisement{}
	case "BGPPeer":
		obj = &v1beta1.BGPPeer{}
	case "BGPAdvertisement":
		obj = &v1beta1.BGPAdvertisement{}
	case "Community":
		obj = &v1beta1.Community{}
	case "BFDProfile":
		obj = &v1beta1.BFDProfile{}
	default:
		t.Fatalf("unknown kind %q", head.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatal(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(v1beta1.GroupVersion.WithKind(head.Kind))
	return obj
}
