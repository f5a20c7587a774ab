package migrate

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRead specifies what is read from a file: which objects, and which
// problems, one line each.
func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		objects  []string // "apiVersion Kind namespace/name"
		problems []string
	}{{
		name: "documents, empty ones and comments",
		in: `# header
---
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a, namespace: metallb-system}
spec: {addresses: [198.18.0.0/24]}
...
# only a comment
--- # a comment on the separator
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.18.0.1}
`,
		objects: []string{"metallb.io/v1beta1 IPAddressPool metallb-system/a", "metallb.io/v1beta2 BGPPeer metallb-system/r"},
	}, {
		name: "a List from kubectl get -o yaml, and a typed list whose items lack kind",
		in: `apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: L2Advertisement
  metadata: {name: l2}
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPoolList
  items:
  - metadata: {name: p}
    spec: {addresses: [198.18.0.0/24]}
`,
		objects: []string{"metallb.io/v1beta1 L2Advertisement l2", "metallb.io/v1beta1 IPAddressPool p"},
	}, {
		name:    "JSON",
		in:      `{"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "c"}, "spec": {"communities": [{"name": "a", "value": "1:1"}]}}`,
		objects: []string{"metallb.io/v1beta1 Community c"},
	}, {
		name: "decoding is strict and case-sensitive, as the API server's",
		in: `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r}
spec:
  myASN: 64512
  peerasn: 64513
  peerAddress: 198.18.0.1
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p}
spec:
  addresses: [198.18.0.0/24]
  addresses: [198.18.1.0/24]
`,
		objects: []string{"metallb.io/v1beta2 BGPPeer r"},
		problems: []string{
			"error: in.yaml:1: BGPPeer r: spec.peerasn: unknown field: metallb.io/v1beta2 BGPPeer has no such field (a typo, or a newer MetalLB than this tool knows); fix or remove it, it is not converted",
			`error: in.yaml:14: malformed YAML: yaml: unmarshal errors: line 14: key "addresses" already set in map`,
		},
	}, {
		name: "wrong types, missing kind, and documents that are not objects",
		in: `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r}
spec: {myASN: 4294967296}
---
metadata: {name: nokind}
---
- a list
---
just a string
`,
		problems: []string{
			"error: in.yaml:1: BGPPeer r: spec.myASN: cannot be decoded as metallb.io/v1beta2 BGPPeer: json: cannot unmarshal number 4294967296 into Go struct field .spec.myASN of type uint32",
			`error: in.yaml:6: apiVersion and kind are required; this document has apiVersion "" and kind ""`,
			"error: in.yaml:8: not a Kubernetes object (a mapping with apiVersion and kind); remove this document",
			"error: in.yaml:10: not a Kubernetes object (a mapping with apiVersion and kind); remove this document",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sources, problems := Read("in.yaml", []byte(tc.in))
			var objs, probs []string
			for _, s := range sources {
				objs = append(objs, s.APIVersion+" "+s.Kind+" "+objectName(s.Namespace, s.Name))
			}
			for _, p := range problems {
				probs = append(probs, p.Severity.String()+": "+p.String())
			}
			if strings.Join(objs, "\n") != strings.Join(tc.objects, "\n") {
				t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(objs, "\n"), strings.Join(tc.objects, "\n"))
			}
			if strings.Join(probs, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(probs, "\n"), strings.Join(tc.problems, "\n"))
			}
		})
	}
}

// TestFromUnstructured: objects listed from a cluster go through the same
// strict decoding, and their problems name no file.
func TestFromUnstructured(t *testing.T) {
	objs := []map[string]any{{
		"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
		"metadata": map[string]any{"name": "p", "namespace": "metallb-system", "resourceVersion": "7",
			"managedFields": []any{map[string]any{"manager": "kubectl"}}},
		"spec":   map[string]any{"addresses": []any{"198.18.0.0/24"}, "autoAssign": false},
		"status": map[string]any{"assignedIPv4": int64(1), "newerField": "x"},
	}, {
		"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
		"metadata": map[string]any{"name": "b"},
		"spec":     map[string]any{"receiveInterval": int64(300), "future": true},
	}}
	sources, problems := FromUnstructured(objs)
	if len(sources) != 2 {
		t.Fatalf("read %d objects, want 2", len(sources))
	}
	want := "BFDProfile b: spec.future: unknown field: metallb.io/v1beta1 BFDProfile has no such field (a typo, or a newer MetalLB than this tool knows); fix or remove it, it is not converted"
	if len(problems) != 1 || problems[0].String() != want {
		t.Fatalf("problems %v, want one: %s", problems, want)
	}
	res := Convert(sources, Options{})
	if len(res.IPAddressPools) != 1 || res.IPAddressPools[0].ResourceVersion != "" || res.IPAddressPools[0].ManagedFields != nil {
		t.Fatalf("pool not converted, or server fields kept: %+v", res.IPAddressPools)
	}
}

// TestReadFiles reads a directory as kubectl -f does, without recursing,
// and reports a missing file.
func TestReadFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	sources, problems := ReadFiles([]string{metallbTestdata, missing})
	if len(sources) < 20 {
		t.Errorf("read %d objects from %s", len(sources), metallbTestdata)
	}
	for _, s := range sources {
		if strings.Contains(s.File, "bad") {
			t.Errorf("read %s: bad/ is a subdirectory", s.File)
		}
	}
	if len(problems) != 1 || problems[0].File != missing || problems[0].Severity != Error {
		t.Errorf("problems %v, want one about %s", problems, missing)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 3, Kind: "BGPPeer", Namespace: "metallb-system", Name: "r", Field: "spec.vrf", Message: "no VRF"}, "a.yaml:3: BGPPeer metallb-system/r: spec.vrf: no VRF"},
		{Problem{Kind: "BGPPeer", Name: "r", Message: "multi\nline  text"}, "BGPPeer r: multi line text"},
		{Problem{File: "a.yaml", Message: "cannot read"}, "a.yaml: cannot read"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
