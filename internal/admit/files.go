package admit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// File is one file of manifests: its name, for messages, and its bytes.
type File struct {
	Name string
	Data []byte
}

// Line is one line of `kubectl pharos validate`'s answer: an object's
// refusal (Err), a warning, or a document that cannot be read (Kind and
// Name empty).
type Line struct {
	File  string
	Index int // the document's index in the file, from 1
	Kind  string
	Name  string
	// Err refuses the object (worded as the apiserver returns the
	// webhook's answer) or says why the document cannot be read.
	Err     error
	Warning string
}

// String renders the line: "FILE: Kind NAME: message".
func (l Line) String() string {
	where := fmt.Sprintf("%s: document %d", l.File, l.Index)
	if l.Kind != "" {
		where = fmt.Sprintf("%s: %s %s", l.File, l.Kind, l.Name)
	}
	if l.Err != nil {
		return where + ": " + l.Err.Error()
	}
	return where + ": Warning: " + l.Warning
}

// object is one decoded Pharos object, or a document that cannot be
// read, and where it came from.
type object struct {
	file       string
	index      int
	obj        any
	kind, name string
	err        error
}

// ValidateFiles checks the Pharos objects of files as if they were
// applied in order, each with the webhook's rules against the objects
// before it: so two overlapping pools refuse the second, and an
// advertisement before its pool gets the webhook's "pool does not exist
// yet" warning. Documents that cannot be read, other kinds and unknown
// fields are errors too; objects of other API groups are skipped. It
// returns the lines and the number of objects checked.
func ValidateFiles(files []File) ([]Line, int) {
	var (
		lines []Line
		objs  []object
	)
	for _, f := range files {
		docs, err := splitDocuments(f.Data)
		for i, doc := range docs {
			decoded, kind, name, err := decode(doc)
			for _, o := range decoded {
				objs = append(objs, object{file: f.Name, index: i + 1, obj: o})
			}
			if err != nil {
				objs = append(objs, object{file: f.Name, index: i + 1, kind: kind, name: name, err: err})
			}
		}
		if err != nil {
			objs = append(objs, object{file: f.Name, index: len(docs) + 1, err: err})
		}
	}
	var s Stored
	checked := 0
	for _, o := range objs {
		if o.err != nil {
			lines = append(lines, Line{File: o.file, Index: o.index, Kind: o.kind, Name: o.name, Err: o.err})
			continue
		}
		checked++
		v := check(o.obj, s)
		line := Line{File: o.file, Index: o.index, Kind: v.Kind, Name: v.Name}
		if err := v.Err(); err != nil {
			line.Err = err
			lines = append(lines, line)
			continue
		}
		for _, w := range v.Warnings {
			line.Warning = w
			lines = append(lines, line)
		}
		store(&s, o.obj)
	}
	return lines, checked
}

// check is the webhook's verdict on one object.
func check(obj any, s Stored) Verdict {
	switch o := obj.(type) {
	case *v1beta1.IPAddressPool:
		return Pool(o, s)
	case *v1beta1.L2Advertisement:
		return L2Advertisement(o, s)
	case *v1beta1.BGPPeer:
		return BGPPeer(o, s)
	case *v1beta1.BGPAdvertisement:
		return BGPAdvertisement(o, s)
	case *v1beta1.Community:
		return Community(o, s)
	case *v1beta1.BFDProfile:
		return BFDProfile(o)
	}
	return Verdict{}
}

// store adds an admitted object to s, replacing an older version.
func store(s *Stored, obj any) {
	switch o := obj.(type) {
	case *v1beta1.IPAddressPool:
		s.Pools = replace(s.Pools, *o, func(x v1beta1.IPAddressPool) string { return x.Name })
	case *v1beta1.L2Advertisement:
		s.L2Advertisements = replace(s.L2Advertisements, *o, func(x v1beta1.L2Advertisement) string { return x.Name })
	case *v1beta1.BGPPeer:
		s.BGPPeers = replace(s.BGPPeers, *o, func(x v1beta1.BGPPeer) string { return x.Name })
	case *v1beta1.BGPAdvertisement:
		s.BGPAdvertisements = replace(s.BGPAdvertisements, *o, func(x v1beta1.BGPAdvertisement) string { return x.Name })
	case *v1beta1.Community:
		s.Communities = replace(s.Communities, *o, func(x v1beta1.Community) string { return x.Name })
	case *v1beta1.BFDProfile:
		s.BFDProfiles = replace(s.BFDProfiles, *o, func(x v1beta1.BFDProfile) string { return x.Name })
	}
}

func replace[T any](list []T, obj T, name func(T) string) []T {
	for i := range list {
		if name(list[i]) == name(obj) {
			list[i] = obj
			return list
		}
	}
	return append(list, obj)
}

// splitDocuments splits a YAML (or JSON) stream into its documents,
// leaving out empty ones. On a read error it returns the documents read
// so far.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
		}
	}
	return out
}

// kinds are the Pharos kinds validate knows, by kind.
var kinds = map[string]func() any{
	"IPAddressPool":    func() any { return &v1beta1.IPAddressPool{} },
	"L2Advertisement":  func() any { return &v1beta1.L2Advertisement{} },
	"BGPPeer":          func() any { return &v1beta1.BGPPeer{} },
	"BGPAdvertisement": func() any { return &v1beta1.BGPAdvertisement{} },
	"Community":        func() any { return &v1beta1.Community{} },
	"BFDProfile":       func() any { return &v1beta1.BFDProfile{} },
}

// decode reads one document strictly: a Pharos object, or a List of them.
// Unknown and duplicate fields are errors, as `kubectl apply
// --validate=strict` makes them. kind and name say which object an error
// is about, when the document says.
func decode(doc []byte) (objs []any, kind, name string, err error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, "", "", err
	}
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, "", "", fmt.Errorf("not a Kubernetes object: %w", err)
	}
	kind, name = head.Kind, head.Metadata.Name
	if kind == "List" {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(js, &list); err != nil {
			return nil, kind, name, fmt.Errorf("kind List: %w", err)
		}
		for i, item := range list.Items {
			got, k, n, err := decode(item)
			objs = append(objs, got...)
			if err != nil {
				return objs, k, n, fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return objs, "", "", nil
	}
	if head.APIVersion != v1beta1.GroupVersion.String() {
		if strings.HasPrefix(head.APIVersion, "metallb.io/") {
			return nil, kind, name, fmt.Errorf("apiVersion %s is MetalLB's; convert it with kubectl pharos migrate-metallb", head.APIVersion)
		}
		if strings.HasPrefix(head.APIVersion, v1beta1.GroupVersion.Group+"/") || head.APIVersion == "" {
			return nil, kind, name, fmt.Errorf("apiVersion %q: Pharos's objects are %s", head.APIVersion, v1beta1.GroupVersion)
		}
		// Other objects (Services, Deployments) in the same files are
		// not the webhook's to check.
		return nil, kind, name, nil
	}
	newObj, ok := kinds[kind]
	if !ok {
		return nil, kind, name, fmt.Errorf("unknown kind %q: Pharos has IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement, Community, BFDProfile", kind)
	}
	if name == "" {
		return nil, kind, name, fmt.Errorf("metadata.name: Required value")
	}
	if err := durations(kind, js); err != nil {
		return nil, kind, name, err
	}
	obj := newObj()
	// As the apiserver decodes with --validate=strict: field names are
	// case-sensitive, unknown and duplicate fields are errors with their
	// path.
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, kind, name, strictError(err)
	}
	if len(strict) > 0 {
		return nil, kind, name, strictError(errors.Join(strict...))
	}
	return []any{obj}, kind, name, nil
}

// durationFields are the duration fields of each kind, under spec.
var durationFields = map[string][]string{"BGPPeer": {"holdTime", "keepaliveTime", "connectTime"}}

// durations checks the kind's duration fields before decoding: a bad one
// fails the decoding with Go's bare `time: invalid duration "soon"`, which
// names neither the field nor the fix.
func durations(kind string, js []byte) error {
	fields := durationFields[kind]
	if len(fields) == 0 {
		return nil
	}
	var obj struct {
		Spec map[string]any `json:"spec"`
	}
	if json.Unmarshal(js, &obj) != nil {
		return nil // the strict decoding says what is wrong
	}
	var errs field.ErrorList
	for _, f := range fields {
		v, ok := obj.Spec[f]
		if !ok || v == nil {
			continue
		}
		s, isString := v.(string)
		if _, err := time.ParseDuration(s); !isString || err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", f), v, "not a duration: write it like 90s or 1m30s"))
		}
	}
	return errs.ToAggregate()
}

// strictError words a strict decoding error as the apiserver does
// ("unknown field \"spec.bogus\"") without the decoders' prefixes.
func strictError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return errors.New(msg)
}
