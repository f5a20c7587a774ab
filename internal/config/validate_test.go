package config

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// TestValidatePool is the admission webhook's specification: what a user
// creating or editing obj is told, given the pools already stored.
func TestValidatePool(t *testing.T) {
	tests := []struct {
		name   string
		obj    v1beta1.IPAddressPool
		others []v1beta1.IPAddressPool
		want   []wantErr
	}{
		{
			name: "a disjoint new pool is accepted",
			obj:  newPool("new", addrs("198.18.101.0/24"), created(9)),
			others: []v1beta1.IPAddressPool{
				newPool("old", addrs("198.18.100.0/24"), created(1)),
			},
		},
		{
			name: "a new pool overlapping an existing one is rejected, even if its creation time sorts first",
			obj:  newPool("aaa", addrs("198.18.101.0/24", "198.18.100.128/25"), created(0)),
			others: []v1beta1.IPAddressPool{
				newPool("old", addrs("198.18.100.0/24"), created(1)),
			},
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[1]", []string{`IPAddressPool "old"`, "remove the overlap"}}},
		},
		{
			name: "growing an existing pool into another is rejected",
			obj:  newPool("old", addrs("198.18.100.0/23"), created(1), generation(2)),
			others: []v1beta1.IPAddressPool{
				newPool("old", addrs("198.18.100.0/24"), created(1)),
				newPool("next", addrs("198.18.101.0/24"), created(2)),
			},
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "next"`}}},
		},
		{
			name: "editing a pool without touching its addresses is accepted",
			obj:  newPool("old", addrs("198.18.100.0/24"), created(1), generation(2), autoAssign(false)),
			others: []v1beta1.IPAddressPool{
				newPool("old", addrs("198.18.100.0/24"), created(1)),
			},
		},
		{
			name: "a malformed address is rejected with its field",
			obj:  newPool("bad", addrs("198.18.100.0/24", "198.18.300.0/24"), created(1)),
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[1]", nil}},
		},
		{
			name: "an overlap between two other pools is not held against the incoming one",
			obj:  newPool("new", addrs("198.18.102.0/24"), created(9)),
			others: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.100.0/25"), created(2)),
			},
		},
		{
			name: "relabelling the older pool is accepted although a newer one overlaps it (stored while the webhook was down)",
			obj:  newPool("a", addrs("198.18.100.0/24"), created(1)),
			others: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.100.0/25"), created(2)),
			},
		},
		{
			name: "editing the spec of the newer, rejected pool keeps it rejected while it overlaps",
			obj:  newPool("b", addrs("198.18.100.0/26"), created(2), generation(2)),
			others: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.100.0/25"), created(2)),
			},
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "a"`}}},
		},
		{
			name: "overlapping a pool that is itself rejected still counts once that pool is the older valid one",
			obj:  newPool("new", addrs("198.18.100.0/25"), created(9)),
			others: []v1beta1.IPAddressPool{
				newPool("a", addrs("198.18.100.0/24"), created(1)),
				newPool("b", addrs("198.18.100.0/25"), created(2)),
			},
			want: []wantErr{{field.ErrorTypeInvalid, "spec.addresses[0]", []string{`IPAddressPool "a"`}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ValidatePool(&tc.obj, tc.others)
			checkErrs(t, got, tc.want)
			// The controller must agree once the object is stored: the
			// same errors for it from Build, given the others as before.
			rest := []v1beta1.IPAddressPool{}
			for _, o := range tc.others {
				if o.Name != tc.obj.Name {
					rest = append(rest, o)
				}
			}
			prev := Build(tc.others, nil).Config
			stored := Build(append(rest, tc.obj), prev)
			if len(stored.Errors[tc.obj.Name]) != len(got) {
				t.Fatalf("webhook says %d errors, controller %d:\n%s\nvs\n%s", len(got), len(stored.Errors[tc.obj.Name]), dump(got), dump(stored.Errors[tc.obj.Name]))
			}
		})
	}
}
