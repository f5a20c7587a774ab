package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Source is one object read from the input, decoded strictly against
// MetalLB's API (or Kubernetes' for a Service), ready for Convert.
type Source struct {
	// File and Line locate the object's document; File is empty for
	// objects read from a cluster.
	File string
	Line int
	// APIVersion, Kind, Namespace and Name are the object's, as read.
	APIVersion string
	Kind       string
	Namespace  string
	Name       string

	// obj is one of the metallb* mirror types or *corev1.Service.
	obj any
}

// problem starts a Problem about the source's object.
func (s *Source) problem(sev Severity, field, format string, args ...any) Problem {
	return Problem{File: s.File, Line: s.Line, Kind: s.Kind, Namespace: s.Namespace, Name: s.Name,
		Field: field, Message: fmt.Sprintf(format, args...), Severity: sev}
}

// maxListDepth bounds Lists nested in Lists: kubectl never writes more than
// one level, and a bound keeps hostile input from recursing without end.
const maxListDepth = 4

// ReadFiles reads MetalLB objects from files. A directory stands for the
// .yaml, .yml and .json files directly in it, in name order (as kubectl -f
// does without --recursive). A file that cannot be read is a Problem; the
// others are still read.
func ReadFiles(paths []string) ([]Source, []Problem) {
	var sources []Source
	var problems []Problem
	for _, path := range paths {
		files := []string{path}
		if info, err := os.Stat(path); err == nil && info.IsDir() {
			entries, err := os.ReadDir(path)
			if err != nil {
				problems = append(problems, Problem{File: path, Message: "cannot read the directory: " + err.Error(), Severity: Error})
				continue
			}
			files = files[:0]
			for _, e := range entries {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".yaml", ".yml", ".json":
					if !e.IsDir() {
						files = append(files, filepath.Join(path, e.Name()))
					}
				}
			}
			sort.Strings(files)
		}
		for _, f := range files {
			data, err := os.ReadFile(f) // #nosec G304 -- the user names the files to convert.
			if err != nil {
				problems = append(problems, Problem{File: f, Message: "cannot read the file: " + err.Error(), Severity: Error})
				continue
			}
			s, p := Read(f, data)
			sources, problems = append(sources, s...), append(problems, p...)
		}
	}
	return sources, problems
}

// Read reads the MetalLB objects of one file's contents: YAML with any
// number of documents separated by "---", or JSON, where a document may
// also be a List of objects (kubectl get -o yaml). name is the file's name
// for the Problems. Each document is decoded strictly: an unknown or
// duplicate field, malformed YAML, or an unknown MetalLB kind or version is
// a Problem. Objects that are not MetalLB's (other than Services) are
// skipped with a warning.
func Read(name string, data []byte) ([]Source, []Problem) {
	var sources []Source
	var problems []Problem
	for _, doc := range splitDocuments(data) {
		j, err := yaml.YAMLToJSONStrict(doc.data)
		if err != nil {
			msg, line := absoluteLines(err.Error(), doc.line)
			problems = append(problems, Problem{File: name, Line: line, Message: "malformed YAML: " + msg, Severity: Error})
			continue
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // only comments, or empty
		}
		s, p := decode(name, doc.contentLine, j, 0)
		sources, problems = append(sources, s...), append(problems, p...)
	}
	return sources, problems
}

// FromUnstructured reads objects listed from a cluster (the Object maps of
// unstructured.Unstructured, as a dynamic client returns them), with the
// same strict decoding as Read.
func FromUnstructured(objs []map[string]any) ([]Source, []Problem) {
	var sources []Source
	var problems []Problem
	for _, o := range objs {
		j, err := json.Marshal(o)
		if err != nil {
			problems = append(problems, Problem{Message: "cannot encode an object read from the cluster: " + err.Error(), Severity: Error})
			continue
		}
		s, p := decode("", 0, j, 0)
		sources, problems = append(sources, s...), append(problems, p...)
	}
	return sources, problems
}

// document is one YAML document of a file, with the line it starts on.
type document struct {
	data []byte
	// line is where the document's text starts (after its "---"), for
	// syntax errors; contentLine its first line that is neither blank nor
	// a comment, usually "apiVersion:", for problems about the object.
	line, contentLine int
}

// splitDocuments cuts a YAML stream at its "---" and "..." lines. It is
// done here rather than by the YAML library so that each document keeps
// its line number, and so that no document is skipped: the library's
// Unmarshal silently reads the first document only.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{line: 1}
	var buf bytes.Buffer
	flush := func() {
		cur.data = append([]byte(nil), buf.Bytes()...)
		if cur.contentLine == 0 {
			cur.contentLine = cur.line
		}
		docs = append(docs, cur)
		buf.Reset()
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		n := i + 1
		trimmed := strings.TrimRight(string(l), " \t\r\n")
		if trimmed == "---" || trimmed == "..." || strings.HasPrefix(trimmed, "--- #") {
			flush()
			cur = document{line: n + 1}
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "--- "); ok {
			// "--- value": the document starts on the marker's line.
			flush()
			cur = document{line: n}
			l = []byte(rest + "\n")
		}
		if t := strings.TrimSpace(string(l)); cur.contentLine == 0 && t != "" && !strings.HasPrefix(t, "#") {
			cur.contentLine = n
		}
		buf.Write(l)
	}
	flush()
	return docs
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// absoluteLines rewrites the YAML library's "line N", counted from the
// document's start, into the file's line numbers, and returns the first
// (or the document's start when the message has none).
func absoluteLines(msg string, start int) (string, int) {
	first := 0
	out := yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(strings.TrimPrefix(m, "line "))
		if err != nil {
			return m
		}
		if first == 0 {
			first = n + start - 1
		}
		return "line " + strconv.Itoa(n+start-1)
	})
	if first == 0 {
		first = start
	}
	return out, first
}

// header is what is read of a document before its kind is known.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

// decode reads one JSON document: an object, or a List of them.
func decode(file string, line int, data []byte, depth int) ([]Source, []Problem) {
	src := Source{File: file, Line: line}
	var h header
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, []Problem{{File: file, Line: line, Message: "not a Kubernetes object (a mapping with apiVersion and kind); remove this document", Severity: Error}}
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, []Problem{{File: file, Line: line, Message: "not a Kubernetes object: " + err.Error(), Severity: Error}}
	}
	src.APIVersion, src.Kind, src.Namespace, src.Name = h.APIVersion, h.Kind, h.Metadata.Namespace, h.Metadata.Name
	if h.APIVersion == "" || h.Kind == "" {
		return nil, []Problem{src.problem(Error, "", "apiVersion and kind are required; this document has apiVersion %q and kind %q", h.APIVersion, h.Kind)}
	}
	group, _, _ := strings.Cut(h.APIVersion, "/")
	if !strings.Contains(h.APIVersion, "/") {
		group = "" // the core group: "v1"
	}
	if h.Kind == "List" || (group == metallbGroup && strings.HasSuffix(h.Kind, "List")) {
		return decodeList(&src, h, depth)
	}

	var obj any
	switch {
	case h.APIVersion == metallbV1beta1 && h.Kind == "IPAddressPool":
		obj = &metallbIPAddressPool{}
	case h.APIVersion == metallbV1beta1 && h.Kind == "L2Advertisement":
		obj = &metallbL2Advertisement{}
	case h.APIVersion == metallbV1beta1 && h.Kind == "BGPAdvertisement":
		obj = &metallbBGPAdvertisement{}
	case h.APIVersion == metallbV1beta1 && h.Kind == "Community":
		obj = &metallbCommunity{}
	case h.APIVersion == metallbV1beta1 && h.Kind == "BFDProfile":
		obj = &metallbBFDProfile{}
	case h.APIVersion == metallbV1beta1 && h.Kind == "BGPPeer":
		obj = &metallbBGPPeerV1beta1{}
	case h.APIVersion == metallbV1beta2 && h.Kind == "BGPPeer":
		obj = &metallbBGPPeerV1beta2{}
	case h.APIVersion == "v1" && h.Kind == "Service":
		obj = &corev1.Service{}
	case group == metallbGroup && metallbStatusKinds[h.Kind]:
		return nil, []Problem{src.problem(Warning, "", "status that MetalLB writes, not configuration; skipped")}
	case group == metallbGroup && h.Kind == "AddressPool":
		return nil, []Problem{src.problem(Error, "", "MetalLB's AddressPool was removed in MetalLB v0.14; rewrite it as an IPAddressPool (spec.addresses, autoAssign, avoidBuggyIPs) and an L2Advertisement or BGPAdvertisement naming it, then convert those")}
	case group == metallbGroup:
		return nil, []Problem{src.problem(Error, "", "unknown MetalLB kind or version %s %s; this tool reads metallb.io/v1beta1 IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile, Community and metallb.io/v1beta2 BGPPeer", h.APIVersion, h.Kind)}
	case h.APIVersion == "v1" && h.Kind == "ConfigMap" && legacyConfigMap(data):
		return nil, []Problem{src.problem(Error, "", "MetalLB's ConfigMap configuration (before v0.13) is not read; convert it to MetalLB's CRDs first with MetalLB's configmaptocrs tool (see MetalLB's \"Migration to CRDs\" page), then convert those")}
	default:
		return nil, []Problem{src.problem(Warning, "", "not MetalLB configuration (%s %s); skipped", h.APIVersion, h.Kind)}
	}

	var problems []Problem
	strict, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field = te.Field
		}
		return nil, []Problem{src.problem(Error, field, "cannot be decoded as %s %s: %v", h.APIVersion, h.Kind, err)}
	}
	for _, e := range strict {
		field, msg := "", e.Error()
		var fp interface{ FieldPath() string }
		if errors.As(e, &fp) {
			field = fp.FieldPath()
		}
		switch {
		case strings.HasPrefix(msg, "unknown field") && h.APIVersion == metallbV1beta1 && h.Kind == "BGPPeer" && v1beta2PeerFields[strings.TrimPrefix(field, "spec.")]:
			msg = fmt.Sprintf("unknown field: only metallb.io/v1beta2 BGPPeer has it (the v1beta1 API server drops it); write the peer as apiVersion %s, it is not converted", metallbV1beta2)
		case strings.HasPrefix(msg, "unknown field"):
			msg = fmt.Sprintf("unknown field: %s %s has no such field (a typo, or a newer MetalLB than this tool knows); fix or remove it, it is not converted", h.APIVersion, h.Kind)
		case strings.HasPrefix(msg, "duplicate field"):
			msg = "set twice; keep one"
		}
		problems = append(problems, src.problem(Error, field, "%s", msg))
	}
	src.obj = obj
	return []Source{src}, problems
}

// decodeList reads the items of a List; a MetalLB typed list
// (IPAddressPoolList) lends its kind to items that lack one.
func decodeList(list *Source, h header, depth int) ([]Source, []Problem) {
	if depth >= maxListDepth {
		return nil, []Problem{list.problem(Error, "", "Lists nested more than %d deep; flatten them", maxListDepth)}
	}
	itemKind := ""
	if h.Kind != "List" {
		itemKind = strings.TrimSuffix(h.Kind, "List")
	}
	var sources []Source
	var problems []Problem
	for i, item := range h.Items {
		if itemKind != "" {
			var m map[string]any
			if err := json.Unmarshal(item, &m); err == nil && m != nil {
				if _, ok := m["apiVersion"]; !ok {
					m["apiVersion"] = h.APIVersion
				}
				if _, ok := m["kind"]; !ok {
					m["kind"] = itemKind
				}
				if b, err := json.Marshal(m); err == nil {
					item = b
				}
			}
		}
		s, p := decode(list.File, list.Line, item, depth+1)
		for j := range p {
			if p[j].Kind == "" {
				p[j].Field = fmt.Sprintf("items[%d]", i)
			}
		}
		sources, problems = append(sources, s...), append(problems, p...)
	}
	return sources, problems
}

// legacyConfigMap reports whether a ConfigMap looks like MetalLB's old
// configuration: a "config" key holding address-pools or peers.
func legacyConfigMap(data []byte) bool {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if json.Unmarshal(data, &cm) != nil {
		return false
	}
	c := cm.Data["config"]
	return strings.Contains(c, "address-pools") || strings.Contains(c, "peers")
}
