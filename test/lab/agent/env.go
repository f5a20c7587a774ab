package agent

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// expandVars expands Kubernetes variable references in s the way the
// kubelet does for env values, command and args: $(NAME) becomes NAME's
// value if lookup knows it and stays as written otherwise, $$ is an escaped
// $, and any other $ is kept. A chart's `--namespace=$(POD_NAMESPACE)` then
// means in the lab what it means on a real node.
func expandVars(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				// Unterminated: kept as written, like the kubelet.
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// podAddrs are the addresses a pod's downward API may ask for.
type podAddrs struct {
	podIPs, hostIPs []netip.Addr // IPv4 first
}

// fieldValue resolves a downward-API fieldRef the way the kubelet does, for
// the paths the lab can answer.
func fieldValue(pod *corev1.Pod, path string, a podAddrs) (string, error) {
	join := func(addrs []netip.Addr) string {
		s := make([]string, len(addrs))
		for i, x := range addrs {
			s[i] = x.String()
		}
		return strings.Join(s, ",")
	}
	first := func(addrs []netip.Addr) string {
		if len(addrs) == 0 {
			return ""
		}
		return addrs[0].String()
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return first(a.podIPs), nil
	case "status.podIPs":
		return join(a.podIPs), nil
	case "status.hostIP":
		return first(a.hostIPs), nil
	case "status.hostIPs":
		return join(a.hostIPs), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m[key], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported by the lab node agent", path)
}

// containerEnv returns the container's environment as NAME=value, one entry
// per name in the order names first appear (a later duplicate wins, as with
// the kubelet), each value expanded against the variables defined before
// it, and the final values by name for expanding command and args. A source
// the agent cannot provide (Secrets, ConfigMaps, resource fields, envFrom)
// is an error naming the variable, so the pod fails visibly instead of
// running with a variable missing.
func containerEnv(pod *corev1.Pod, c *corev1.Container, a podAddrs) ([]string, map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, nil, fmt.Errorf("container %s: envFrom is not supported by the lab node agent", c.Name)
	}
	vals := map[string]string{}
	var order []string
	lookup := func(name string) (string, bool) { v, ok := vals[name]; return v, ok }
	for _, e := range c.Env {
		var v string
		switch src := e.ValueFrom; {
		case src == nil:
			v = expandVars(e.Value, lookup)
		case src.FieldRef != nil:
			var err error
			if v, err = fieldValue(pod, src.FieldRef.FieldPath, a); err != nil {
				return nil, nil, fmt.Errorf("container %s, env %s: %w", c.Name, e.Name, err)
			}
		default:
			return nil, nil, fmt.Errorf("container %s, env %s: this valueFrom is not supported by the lab node agent (only value and valueFrom.fieldRef are)", c.Name, e.Name)
		}
		if _, seen := vals[e.Name]; !seen {
			order = append(order, e.Name)
		}
		vals[e.Name] = v
	}
	env := make([]string, len(order))
	for i, name := range order {
		env[i] = name + "=" + vals[name]
	}
	return env, vals, nil
}

// expandArgv returns the container's command and args with $(VAR)
// references expanded from env, as one argv.
func expandArgv(c *corev1.Container, env map[string]string) []string {
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, s := range c.Command {
		argv = append(argv, expandVars(s, lookup))
	}
	for _, s := range c.Args {
		argv = append(argv, expandVars(s, lookup))
	}
	return argv
}
