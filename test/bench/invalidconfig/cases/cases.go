// Package cases reads the invalid-configuration suite, test/testdata/invalid,
// and checks it offline with admit.ValidateFiles, as `kubectl pharos
// validate -f` does. The controller's webhook tests apply the same cases
// through a real apiserver (controller/webhook/invalid_test.go).
//
// Each case is one file of manifests, applied in order. Its header (the
// comment lines before the first document) says what is wrong, which
// objects are refused and why; every other object is admitted. Three
// headers:
//
//	# A pool overlapping an earlier one.
//	# expect: IPAddressPool b: spec.addresses[0]: overlaps 198.18.201.0-198.18.201.255 of IPAddressPool "a"
//
//	# ASN 0 for the router.
//	# expect: BGPPeer r1: spec.peerASN: Required value
//	# schema: spec.peerASN: should be greater than or equal to 1
//
//	# Deleting a BFDProfile that a BGPPeer names.
//	# expect delete: BFDProfile fast: spec.bfdProfile: in use by BGPPeer r1
//
// "expect: KIND NAME: PATH: PROBLEM" is validate's refusal: its message
// names PATH and says PROBLEM. The webhook refuses the object with that
// message verbatim, unless a "schema:" line follows: then the CRD's schema
// refuses it first, in its own words, which contain what the schema line
// says (its field path first). "expect delete:" is the refusal of deleting
// the object once every document is applied.
package cases

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/admit"
)

// ValidateAdmits are the cases that only the CRD's schema refuses: validate
// does not run the schema, and internal/config has no such check, so
// `kubectl pharos validate` admits them. They are the known gap between
// validate and a real apiserver; the suite checks that validate does
// admit them, so that closing a gap means removing it from here.
var ValidateAdmits = map[string]string{
	// peerPort is a uint16 with omitempty: 0 reads as unset, and the
	// speakers then use 179. The schema refuses the explicit 0.
	"peer-port-zero.yaml": "an explicit peerPort: 0 decodes as unset (the default, 179)",
}

// Refusal is one expected refusal.
type Refusal struct {
	Kind, Name string
	// Path and Problem are in validate's message.
	Path, Problem string
	// Schema, when set, says that the CRD's schema refuses the object
	// before the webhook; the apiserver's message contains Schema.
	Schema string
	// Delete says that deleting the object is refused, not creating it.
	Delete bool
}

// Webhook reports whether the webhook is what refuses it on a real
// apiserver (rather than the CRD's schema).
func (r Refusal) Webhook() bool { return r.Schema == "" }

func (r Refusal) String() string {
	s := fmt.Sprintf("%s %s: %s: %s", r.Kind, r.Name, r.Path, r.Problem)
	if r.Delete {
		s = "delete " + s
	}
	return s
}

// Case is one file of the suite.
type Case struct {
	// File is the file's base name.
	File string
	// Summary is the header's prose.
	Summary string
	// Data is the whole file; Docs its documents, in order.
	Data     []byte
	Docs     [][]byte
	Refusals []Refusal
}

// Refused returns the expected refusal of creating the object, or nil.
func (c *Case) Refused(kind, name string) *Refusal {
	for i := range c.Refusals {
		if r := &c.Refusals[i]; !r.Delete && r.Kind == kind && r.Name == name {
			return r
		}
	}
	return nil
}

// Kind is the kind of the case's first refusal: what the case is about.
func (c *Case) Kind() string { return c.Refusals[0].Kind }

// Gap says why validate admits the case, for the cases of ValidateAdmits.
func (c *Case) Gap() string { return ValidateAdmits[c.File] }

// Dir is the suite's directory in the repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "invalid")
}

// Load reads every case of dir, sorted by file name.
func Load(dir string) ([]Case, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Case
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		c, err := Parse(filepath.Base(name), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	for file := range ValidateAdmits {
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			return nil, fmt.Errorf("ValidateAdmits names %s: %w", file, err)
		}
	}
	return out, nil
}

// Parse reads one case.
func Parse(file string, data []byte) (Case, error) {
	c := Case{File: file, Data: data}
	var summary []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "#") {
			break
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		switch {
		case strings.HasPrefix(line, "expect:"), strings.HasPrefix(line, "expect delete:"):
			r, err := parseRefusal(line)
			if err != nil {
				return c, err
			}
			c.Refusals = append(c.Refusals, r)
		case strings.HasPrefix(line, "schema:"):
			if len(c.Refusals) == 0 || c.Refusals[len(c.Refusals)-1].Delete {
				return c, errors.New(`"schema:" must follow the "expect:" line it is about`)
			}
			c.Refusals[len(c.Refusals)-1].Schema = strings.TrimSpace(strings.TrimPrefix(line, "schema:"))
		default:
			summary = append(summary, line)
		}
	}
	c.Summary = strings.TrimSpace(strings.Join(summary, " "))
	if c.Summary == "" {
		return c, errors.New("no summary: say in the header what is wrong")
	}
	if len(c.Refusals) == 0 {
		return c, errors.New(`no "# expect:" line`)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return c, err
		}
		if s := string(bytes.TrimSpace(js)); s != "null" && s != "" {
			c.Docs = append(c.Docs, doc)
		}
	}
	if len(c.Docs) == 0 {
		return c, errors.New("no documents")
	}
	return c, nil
}

// parseRefusal reads "expect: KIND NAME: PATH: PROBLEM" or
// "expect delete: ...".
func parseRefusal(line string) (Refusal, error) {
	var r Refusal
	rest, ok := strings.CutPrefix(line, "expect delete:")
	if ok {
		r.Delete = true
	} else {
		rest = strings.TrimPrefix(line, "expect:")
	}
	parts := strings.SplitN(strings.TrimSpace(rest), ": ", 3)
	if len(parts) != 3 {
		return r, fmt.Errorf("%q: want expect: KIND NAME: PATH: PROBLEM", line)
	}
	obj := strings.Fields(parts[0])
	if len(obj) != 2 {
		return r, fmt.Errorf("%q: want KIND NAME before the path", line)
	}
	r.Kind, r.Name, r.Path, r.Problem = obj[0], obj[1], parts[1], parts[2]
	return r, nil
}

// Offline is validate's answer for a case.
type Offline struct {
	// Lines are ValidateFiles's lines for the case's file.
	Lines []admit.Line
	// Messages holds, per refusal (by String), validate's message; none
	// for the cases of ValidateAdmits.
	Messages map[string]string
}

// Message returns validate's message for a refusal.
func (o Offline) Message(r Refusal) string { return o.Messages[r.String()] }

// Warnings returns validate's warnings for an object, in order.
func (o Offline) Warnings(kind, name string) []string {
	var out []string
	for _, l := range o.Lines {
		if l.Err == nil && l.Kind == kind && l.Name == name {
			out = append(out, l.Warning)
		}
	}
	return out
}

// Check runs the case through admit.ValidateFiles, as `kubectl pharos
// validate -f FILE` does, and checks that it refuses exactly the expected
// objects, each with a message that names its path and problem. A
// deletion, which validate has no way to say, is checked with
// admit.DeleteBFDProfile against the objects validate admitted.
func Check(c Case) (Offline, error) {
	out := Offline{Messages: map[string]string{}}
	out.Lines, _ = admit.ValidateFiles([]admit.File{{Name: c.File, Data: c.Data}})
	var problems []string
	refused := map[string]bool{}
	for _, l := range out.Lines {
		if l.Err == nil {
			continue
		}
		if l.Kind == "" {
			problems = append(problems, fmt.Sprintf("a document cannot be read: %s", l))
			continue
		}
		if c.Refused(l.Kind, l.Name) == nil {
			problems = append(problems, fmt.Sprintf("validate refuses %s %s, which the case does not expect: %v", l.Kind, l.Name, l.Err))
			continue
		}
		refused[l.Kind+" "+l.Name] = true
		msg := l.Err.Error()
		if c.Gap() != "" {
			problems = append(problems, fmt.Sprintf("validate refuses %s %s (%s): remove %s from cases.ValidateAdmits", l.Kind, l.Name, msg, c.File))
			continue
		}
		// One message says all that is wrong with the object.
		for _, r := range c.Refusals {
			if r.Delete || r.Kind != l.Kind || r.Name != l.Name {
				continue
			}
			if !strings.Contains(msg, r.Path) || !strings.Contains(msg, r.Problem) {
				problems = append(problems, fmt.Sprintf("validate refuses %s %s with\n  %s\nwhich does not contain %q and %q", l.Kind, l.Name, msg, r.Path, r.Problem))
			}
			out.Messages[r.String()] = msg
		}
	}
	for _, r := range c.Refusals {
		switch {
		case r.Delete:
			msg, err := checkDelete(c, out.Lines, r)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			out.Messages[r.String()] = msg
		case refused[r.Kind+" "+r.Name]:
		case c.Gap() != "":
			if r.Webhook() {
				problems = append(problems, fmt.Sprintf("%s is in cases.ValidateAdmits, but the webhook refuses %s %s: validate must too", c.File, r.Kind, r.Name))
			}
		default:
			problems = append(problems, fmt.Sprintf("validate admits %s %s; want %s: %s", r.Kind, r.Name, r.Path, r.Problem))
		}
	}
	if len(problems) > 0 {
		return out, errors.New(strings.Join(problems, "\n"))
	}
	return out, nil
}

// checkDelete returns admit's refusal of deleting the BFDProfile of r
// after the documents that validate admitted.
func checkDelete(c Case, lines []admit.Line, r Refusal) (string, error) {
	if r.Kind != "BFDProfile" {
		return "", fmt.Errorf("%s: only a BFDProfile's deletion is checked", r)
	}
	refused := map[string]bool{}
	for _, l := range lines {
		if l.Err != nil {
			refused[l.Kind+" "+l.Name] = true
		}
	}
	var s admit.Stored
	var profile *v1beta1.BFDProfile
	for _, doc := range c.Docs {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return "", err
		}
		if refused[head.Kind+" "+head.Metadata.Name] {
			continue
		}
		switch head.Kind {
		case "BGPPeer":
			var p v1beta1.BGPPeer
			if err := yaml.Unmarshal(doc, &p); err != nil {
				return "", err
			}
			s.BGPPeers = append(s.BGPPeers, p)
		case "BFDProfile":
			if head.Metadata.Name == r.Name {
				profile = &v1beta1.BFDProfile{}
				if err := yaml.Unmarshal(doc, profile); err != nil {
					return "", err
				}
			}
		}
	}
	if profile == nil {
		return "", fmt.Errorf("%s: no such admitted BFDProfile in the documents", r)
	}
	err := admit.DeleteBFDProfile(profile, s).Err()
	if err == nil {
		return "", fmt.Errorf("admit admits deleting BFDProfile %s; want %s: %s", r.Name, r.Path, r.Problem)
	}
	if msg := err.Error(); !strings.Contains(msg, r.Path) || !strings.Contains(msg, r.Problem) {
		return "", fmt.Errorf("admit refuses deleting BFDProfile %s with\n  %s\nwhich does not contain %q and %q", r.Name, msg, r.Path, r.Problem)
	}
	return err.Error(), nil
}
