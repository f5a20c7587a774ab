package admit_test

import (
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/internal/admit"
)

const pool = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: %s}
spec: {addresses: [%s]}
`

func doc(format string, args ...string) string {
	for _, a := range args {
		format = strings.Replace(format, "%s", a, 1)
	}
	return format
}

// TestValidateFiles: what `kubectl pharos validate` says about files, in
// the order a user applies them.
func TestValidateFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		want    []string // one per line, in order (substrings)
		checked int
	}{{
		name:    "a valid pool and its advertisement: the webhook warns about the pool, applied first, that nothing announces it yet",
		files:   []string{doc(pool, "lan", "198.18.0.0/24") + "---\napiVersion: pharos.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan}\nspec: {ipAddressPools: [lan]}\n"},
		want:    []string{`IPAddressPool lan: Warning: no L2Advertisement or BGPAdvertisement selects`},
		checked: 2,
	}, {
		name:    "the advertisement first: only that its pool does not exist yet",
		files:   []string{"apiVersion: pharos.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: lan}\nspec: {ipAddressPools: [lan]}\n", doc(pool, "lan", "198.18.0.0/24")},
		want:    []string{"BGPAdvertisement lan: Warning: IPAddressPool lan does not exist yet"},
		checked: 2,
	}, {
		name:  "the second of two overlapping pools is refused, as the webhook refuses it",
		files: []string{doc(pool, "a", "198.18.0.0/24"), doc(pool, "b", "198.18.0.128/25")},
		want: []string{`f0: IPAddressPool a: Warning: no L2Advertisement or BGPAdvertisement selects IPAddressPool "a"`,
			`f1: IPAddressPool b: IPAddressPool.pharos.io "b" is invalid: spec.addresses[0]`},
		checked: 2,
	}, {
		name:    "a bad CIDR names the field and the fix",
		files:   []string{doc(pool, "a", "198.18.0.0/33")},
		want:    []string{`IPAddressPool a: IPAddressPool.pharos.io "a" is invalid: spec.addresses[0]: Invalid value: "198.18.0.0/33"`},
		checked: 1,
	}, {
		name:  "an advertisement before its pool: the webhook's warning",
		files: []string{"apiVersion: pharos.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan}\nspec: {ipAddressPools: [lan]}\n---\n" + doc(pool, "lan", "198.18.0.0/24")},
		want:  []string{"L2Advertisement lan: Warning: IPAddressPool lan does not exist yet"}, checked: 2,
	}, {
		name:  "unknown field, unknown kind, MetalLB's kind, no name, bad YAML: one line each",
		files: []string{"apiVersion: pharos.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\nspec: {addresses: [198.18.0.0/24], bogus: 1}\n---\napiVersion: pharos.io/v1beta1\nkind: Pool\nmetadata: {name: why}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: z}\n---\napiVersion: pharos.io/v1beta1\nkind: BFDProfile\nspec: {}\n---\nkey: [unclosed\n"},
		want: []string{`IPAddressPool x: unknown field "spec.bogus"`, `Pool why: unknown kind "Pool"`, "IPAddressPool z: apiVersion metallb.io/v1beta1 is MetalLB's; convert it with kubectl pharos migrate-metallb",
			"BFDProfile : metadata.name: Required value", "f0: document 5: yaml: line 1"},
	}, {
		name:    "objects of other API groups are not validate's to check; a wrong pharos.io version is",
		files:   []string{"apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: pharos.io/v1\nkind: IPAddressPool\nmetadata: {name: old}\n"},
		want:    []string{`IPAddressPool old: apiVersion "pharos.io/v1": Pharos's objects are pharos.io/v1beta1`},
		checked: 0,
	}, {
		name:  "a List of objects is read item by item",
		files: []string{"apiVersion: v1\nkind: List\nitems:\n- apiVersion: pharos.io/v1beta1\n  kind: Community\n  metadata: {name: c}\n  spec: {communities: [{name: x, value: 'nope'}]}\n"},
		want:  []string{`Community c: Community.pharos.io "c" is invalid: spec.communities[0].value`}, checked: 1,
	}, {
		name:  "a BGPAdvertisement naming a community alias a Community defines badly",
		files: []string{"apiVersion: pharos.io/v1beta1\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, bfdProfile: fast}\n"},
		want:  []string{`BGPPeer r: Warning: BFDProfile "fast" named in spec.bfdProfile does not exist`}, checked: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var files []admit.File
			for i, f := range tc.files {
				files = append(files, admit.File{Name: "f" + string(rune('0'+i)), Data: []byte(f)})
			}
			lines, checked := admit.ValidateFiles(files)
			var got []string
			for _, l := range lines {
				got = append(got, l.String())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %d: %q lacks %q", i, got[i], w)
				}
			}
			if checked != tc.checked {
				t.Errorf("checked %d objects, want %d", checked, tc.checked)
			}
		})
	}
}

// FuzzValidateFiles: no input makes validate panic.
func FuzzValidateFiles(f *testing.F) {
	f.Add([]byte(doc(pool, "a", "198.18.0.0/24")))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{kind: List, items: [1]}]\n"))
	f.Add([]byte("---\n---\n{]"))
	f.Fuzz(func(_ *testing.T, data []byte) {
		admit.ValidateFiles([]admit.File{{Name: "f", Data: data}})
	})
}
