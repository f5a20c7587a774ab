package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// YAML renders the Result's objects as one multi-document YAML stream, in
// the order they can be applied: pools, community aliases and BFD
// profiles before the peers and advertisements that name them (Pharos's
// webhook checks a BGPAdvertisement's communities against the aliases that
// exist), then the Services. Within a kind, objects are sorted by name;
// keys are sorted, so the output is stable. Status and the empty
// creationTimestamp that Go's types always write are left out.
func (r *Result) YAML() ([]byte, error) {
	var objs []any
	for i := range r.IPAddressPools {
		objs = append(objs, &r.IPAddressPools[i])
	}
	for i := range r.Communities {
		objs = append(objs, &r.Communities[i])
	}
	for i := range r.BFDProfiles {
		objs = append(objs, &r.BFDProfiles[i])
	}
	for i := range r.BGPPeers {
		objs = append(objs, &r.BGPPeers[i])
	}
	for i := range r.L2Advertisements {
		objs = append(objs, &r.L2Advertisements[i])
	}
	for i := range r.BGPAdvertisements {
		objs = append(objs, &r.BGPAdvertisements[i])
	}
	for i := range r.Services {
		objs = append(objs, &r.Services[i])
	}
	var out bytes.Buffer
	for i, o := range objs {
		doc, err := render(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
	}
	return out.Bytes(), nil
}

// render writes one object as YAML, through a generic map so that the
// fields Go's types cannot omit (status, a zero creationTimestamp) can be.
func render(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		if ts, ok := md["creationTimestamp"]; ok && ts == nil {
			delete(md, "creationTimestamp")
		}
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		// A Service port's targetPort is a struct that Go always writes;
		// 0 means unset (the API server defaults it to the port).
		if ports, ok := spec["ports"].([]any); ok {
			for _, p := range ports {
				if pm, ok := p.(map[string]any); ok && pm["targetPort"] == float64(0) {
					delete(pm, "targetPort")
				}
			}
		}
	}
	if spec, ok := m["spec"].(map[string]any); ok && len(spec) == 0 {
		// An L2Advertisement of every pool from every node has an empty
		// spec; "spec: {}" says nothing more than no spec.
		delete(m, "spec")
	}
	return yaml.Marshal(m)
}
