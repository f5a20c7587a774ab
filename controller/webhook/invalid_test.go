package webhook_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/internal/certs"
	"github.com/pharos-lb/pharos/test/bench/invalidconfig/cases"
)

// minInvalidCases is the size the suite may not shrink below.
const minInvalidCases = 100

// TestInvalidConfigurations applies the invalid-configuration suite
// (test/testdata/invalid, one file of manifests per case) to a real
// apiserver that calls the webhook, document by document as `kubectl
// apply --validate=strict` would, and checks that exactly the objects each
// case expects are refused, by whom it says:
//
//   - by the webhook: the apiserver's error contains, verbatim, the
//     message with which `kubectl pharos validate` (admit.ValidateFiles)
//     refuses the same object in the same file;
//   - by the CRD's schema, before the webhook: the apiserver's error is
//     not the webhook's and names the field and problem that the case's
//     "schema:" line says, and validate refuses the object too, in its own
//     words, except for the known gap (cases.ValidateAdmits).
//
// Objects a case does not expect refused are admitted by both, with the
// same warnings. A case may also expect the deletion of a BFDProfile to
// be refused once its documents are applied.
func TestInvalidConfigurations(t *testing.T) {
	all, err := cases.Load(cases.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < minInvalidCases {
		t.Fatalf("the suite has %d cases; it needs at least %d", len(all), minInvalidCases)
	}
	serve(t, "pharos-webhook-invalid", certs.Policy{}, admissionregistrationv1.Fail)
	byKind := map[string]int{}
	schema, gaps := 0, []string{}
	for _, c := range all {
		byKind[c.Kind()]++
		if !c.Refusals[0].Webhook() {
			schema++
		}
		if c.Gap() != "" {
			gaps = append(gaps, c.File)
		}
		t.Run(strings.TrimSuffix(c.File, ".yaml"), func(t *testing.T) { applyInvalidCase(t, c) })
	}
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("%d cases (%s); the schema refuses %d first, the webhook %d; validate admits %d (%s)",
		len(all), strings.Join(kinds, ", "), schema, len(all)-schema, len(gaps), strings.Join(gaps, ", "))
}

func applyInvalidCase(t *testing.T, c cases.Case) {
	offline, err := cases.Check(c)
	if err != nil {
		t.Errorf("kubectl pharos validate: %v", err)
	}
	ctx := context.Background()
	var created []*unstructured.Unstructured
	defer func() { deleteAll(ctx, created) }()
	for _, doc := range c.Docs {
		obj := unstructuredObject(t, doc)
		kind, name := obj.GetKind(), obj.GetName()
		warnings.take()
		err := k8s.Create(ctx, obj, client.FieldValidation("Strict"))
		got := warnings.take()
		if err == nil {
			created = append(created, obj)
		}
		refused := false
		for _, r := range c.Refusals {
			if r.Delete || r.Kind != kind || r.Name != name {
				continue
			}
			refused = true
			if err == nil {
				t.Errorf("the apiserver admits %s %s; want it refused: %s", kind, name, r)
				continue
			}
			checkRefusal(t, r, err, offline.Message(r))
		}
		switch {
		case !refused && err != nil:
			t.Errorf("the apiserver refuses %s %s, which the case does not expect: %v", kind, name, err)
		case !refused:
			if want := offline.Warnings(kind, name); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s %s: the webhook warns\n  %q\nvalidate warns\n  %q", kind, name, got, want)
			}
		}
	}
	for _, r := range c.Refusals {
		if !r.Delete {
			continue
		}
		i := indexOf(created, r.Kind, r.Name)
		if i < 0 {
			t.Errorf("%s: the object was not created", r)
			continue
		}
		err := k8s.Delete(ctx, created[i])
		if err == nil {
			t.Errorf("the apiserver deletes %s %s; want it refused: %s", r.Kind, r.Name, r)
			created = append(created[:i], created[i+1:]...)
			continue
		}
		checkRefusal(t, r, err, offline.Message(r))
	}
}

// checkRefusal checks the apiserver's refusal err against r and against
// validate's message for it (empty if validate admits it).
func checkRefusal(t *testing.T, r cases.Refusal, err error, validate string) {
	t.Helper()
	msg := err.Error()
	byWebhook := strings.Contains(msg, "admission webhook") && strings.Contains(msg, "denied the request")
	if r.Webhook() {
		switch {
		case !byWebhook:
			t.Errorf("%s: the webhook should refuse it, but the apiserver does (add a schema: line?):\n  %s", r, msg)
		case validate != "" && !strings.Contains(msg, validate):
			t.Errorf("%s: the webhook says\n  %s\nvalidate says\n  %s", r, msg, validate)
		case !strings.Contains(msg, r.Path) || !strings.Contains(msg, r.Problem):
			t.Errorf("%s: the webhook says\n  %s", r, msg)
		}
		return
	}
	path, problem, _ := strings.Cut(r.Schema, ": ")
	switch {
	case byWebhook:
		t.Errorf("%s: the schema should refuse it, but the webhook does (remove the schema: line?):\n  %s", r, msg)
	case !strings.Contains(msg, path) || !strings.Contains(msg, problem):
		t.Errorf("%s: the apiserver says\n  %s\nwhich does not contain %q and %q", r, msg, path, problem)
	}
}

func unstructuredObject(t *testing.T, doc []byte) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return obj
}

func indexOf(objs []*unstructured.Unstructured, kind, name string) int {
	for i, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return i
		}
	}
	return -1
}

// deleteAll deletes what a case created: the BFDProfiles last, once no
// BGPPeer names them.
func deleteAll(ctx context.Context, objs []*unstructured.Unstructured) {
	for _, profiles := range []bool{false, true} {
		for i := len(objs) - 1; i >= 0; i-- {
			if (objs[i].GetKind() == "BFDProfile") == profiles {
				_ = k8s.Delete(ctx, objs[i])
			}
		}
	}
}
