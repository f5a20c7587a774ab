package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"NS": "pharos-system", "EMPTY": ""}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"--namespace=$(NS)":  "--namespace=pharos-system",
		"$(NS)/$(NS)":        "pharos-system/pharos-system",
		"$(MISSING)":         "$(MISSING)",
		"x$(EMPTY)y":         "xy",
		"$$(NS)":             "$(NS)",
		"$$":                 "$",
		"a$b":                "a$b",
		"trailing$":          "trailing$",
		"$(unterminated":     "$(unterminated",
		"$(NS)$(unfinished":  "pharos-system$(unfinished",
		"price: $5 and $$10": "price: $5 and $10",
		"":                   "",
	} {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func pharosTestPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "pharos-controller-abc", Namespace: "pharos-system", UID: "u-1",
			Labels: map[string]string{"app": "pharos"}, Annotations: map[string]string{"a/b": "c"},
		},
		Spec: corev1.PodSpec{
			NodeName:           "plab-n2",
			ServiceAccountName: "pharos-controller",
			Containers: []corev1.Container{{
				Name:    "controller",
				Image:   "ghcr.io/pharos-lb/pharos:dev",
				Command: []string{"/controller"},
				Args:    []string{"--namespace=$(POD_NAMESPACE)", "--node=$(NODE)", "--x=$(UNSET)", "--literal=$$(POD_NAMESPACE)"},
				Env: []corev1.EnvVar{
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
					{Name: "GREETING", Value: "hello $(NODE) in $(POD_NAMESPACE), $(LATER)"},
					{Name: "LATER", Value: "later"},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "POD_IPS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
					{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
					{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
					{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
					{Name: "ANN", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['a/b']"}}},
					{Name: "LATER", Value: "overridden"},
				},
			}},
		},
	}
}

func TestContainerEnv(t *testing.T) {
	pod := pharosTestPod()
	a := podAddrs{
		podIPs:  []netip.Addr{netip.MustParseAddr("198.18.34.2"), netip.MustParseAddr("2001:db8:42:2::2")},
		hostIPs: []netip.Addr{netip.MustParseAddr("198.18.96.12"), netip.MustParseAddr("2001:db8:96::12")},
	}
	env, vals, err := containerEnv(pod, &pod.Spec.Containers[0], a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POD_NAMESPACE=pharos-system",
		"NODE=plab-n2",
		// LATER is not defined yet when GREETING is expanded.
		"GREETING=hello plab-n2 in pharos-system, $(LATER)",
		// A duplicate keeps the first one's place and the last one's value.
		"LATER=overridden",
		"POD_IP=198.18.34.2",
		"POD_IPS=198.18.34.2,2001:db8:42:2::2",
		"HOST_IP=198.18.96.12",
		"SA=pharos-controller",
		"NAME=pharos-controller-abc",
		"APP=pharos",
		"ANN=c",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env\n got %q\nwant %q", env, want)
	}
	argv := expandArgv(&pod.Spec.Containers[0], vals)
	wantArgv := []string{"/controller", "--namespace=pharos-system", "--node=plab-n2", "--x=$(UNSET)", "--literal=$(POD_NAMESPACE)"}
	if !slices.Equal(argv, wantArgv) {
		t.Errorf("argv\n got %q\nwant %q", argv, wantArgv)
	}
}

func TestContainerEnvRefusesWhatTheLabCannotProvide(t *testing.T) {
	for name, mutate := range map[string]func(c *corev1.Container){
		"secretKeyRef": func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}})
		},
		"resourceFieldRef": func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "KEY", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}})
		},
		"unknown fieldRef": func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "KEY", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.schedulerName"}}})
		},
		"envFrom": func(c *corev1.Container) {
			c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}
		},
	} {
		pod := pharosTestPod()
		mutate(&pod.Spec.Containers[0])
		_, _, err := containerEnv(pod, &pod.Spec.Containers[0], podAddrs{})
		if err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
