package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pharosOptions() Options {
	o := testOptions()
	o.PharosImage = "ghcr.io/pharos-lb/pharos"
	o.PharosBinaries = map[string]string{"/controller": "/lab/bin/controller", "/speaker": "/lab/bin/speaker"}
	o.PharosUID, o.PharosGID = 65532, 65532
	o.LaunchCommand = []string{"/bin/lab", "pod-exec"}
	o.APIServer, o.APIServerCA, o.StateDir = "https://198.18.96.2:6443", "/lab/pki/ca.crt", "/run/plab-lab/plab-n1"
	return o
}

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io/pharos-lb/pharos:dev":                 "ghcr.io/pharos-lb/pharos",
		"ghcr.io/pharos-lb/pharos":                     "ghcr.io/pharos-lb/pharos",
		"ghcr.io/pharos-lb/pharos@sha256:abc":          "ghcr.io/pharos-lb/pharos",
		"ghcr.io/pharos-lb/pharos:v1.2.3@sha256:abc":   "ghcr.io/pharos-lb/pharos",
		"registry.local:5000/pharos-lb/pharos":         "registry.local:5000/pharos-lb/pharos",
		"registry.local:5000/pharos-lb/pharos:v1.0.0":  "registry.local:5000/pharos-lb/pharos",
		"ghcr.io/pharos-lb/pharos-something-else:v1.0": "ghcr.io/pharos-lb/pharos-something-else",
	} {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPharosPodOf(t *testing.T) {
	o := pharosOptions()

	// Other images keep the echo server.
	if _, ok, err := o.pharosPodOf(testPod()); ok || err != nil {
		t.Errorf("echo pod: ok %v err %v", ok, err)
	}
	noImage := testOptions()
	if _, ok, _ := noImage.pharosPodOf(pharosTestPod()); ok {
		t.Error("Pharos pod recognised without PharosImage")
	}

	pod := pharosTestPod()
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](120)
	pp, ok, err := o.pharosPodOf(pod)
	if !ok || err != nil {
		t.Fatalf("ok %v err %v", ok, err)
	}
	if pp.binary != "/lab/bin/controller" || pp.uid != 65532 || pp.gid != 65532 || pp.hostNetwork ||
		pp.restartPolicy != corev1.RestartPolicyNever || pp.grace != maxGrace || !pp.credentials {
		t.Errorf("plan %+v", pp)
	}
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	pod.Spec.RestartPolicy = ""
	if pp, _, _ := o.pharosPodOf(pod); pp.grace != 5*time.Second || pp.credentials || pp.restartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("plan %+v", pp)
	}

	for name, mutate := range map[string]func(p *corev1.Pod){
		"no command":      func(p *corev1.Pod) { p.Spec.Containers[0].Command = nil },
		"unknown command": func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/bin/sh"} },
		"two containers": func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox"})
		},
		"init container": func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}} },
		"pharos init only": func(p *corev1.Pod) {
			p.Spec.InitContainers = slices.Clone(p.Spec.Containers)
			p.Spec.Containers[0].Image = "busybox"
		},
		"root with runAsNonRoot": func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}
		},
	} {
		pod := pharosTestPod()
		mutate(pod)
		if _, ok, err := o.pharosPodOf(pod); !ok || err == nil {
			t.Errorf("%s: ok %v err %v", name, ok, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestPharosPodSecurity: the securityContext's readOnlyRootFilesystem,
// allowPrivilegeEscalation and seccompProfile, and the emptyDir volumes,
// become the launcher's; what the lab cannot do fails the pod.
func TestPharosPodSecurity(t *testing.T) {
	o := pharosOptions()
	// As the chart has the controller: the pod's seccompProfile, the
	// container's read-only root, an emptyDir at /tmp and the token volume
	// admission adds.
	chartPod := func() *corev1.Pod {
		pod := pharosTestPod()
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}
		pod.Spec.Volumes = []corev1.Volume{
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			}}}},
		}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "tmp", MountPath: "/tmp/"},
			{Name: "kube-api-access-x", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
		}
		return pod
	}
	pp, _, err := o.pharosPodOf(chartPod())
	if err != nil {
		t.Fatal(err)
	}
	if !pp.readOnlyRoot || !pp.noNewPrivs || pp.seccomp != "runtime-default" ||
		!slices.Equal(pp.volumes, []podVolume{{name: "tmp", mountPath: "/tmp"}}) {
		t.Errorf("chart pod: %+v", pp)
	}

	// Nothing asked: a writable root, privileges may be gained, no
	// seccomp (the kubelet's default), no volume.
	pp, _, err = o.pharosPodOf(pharosTestPod())
	if err != nil {
		t.Fatal(err)
	}
	if pp.readOnlyRoot || pp.noNewPrivs || pp.seccomp != "unconfined" || len(pp.volumes) != 0 {
		t.Errorf("plain pod: %+v", pp)
	}

	for name, tc := range map[string]struct {
		mutate func(*corev1.Pod)
		want   string // pp.seccomp, or "error"
	}{
		"container Unconfined over the pod's RuntimeDefault": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "unconfined"},
		"container RuntimeDefault alone": {func(p *corev1.Pod) {
			p.Spec.SecurityContext = nil
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
		}, "runtime-default"},
		"privileged": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		}, "unconfined"},
		"Localhost": {func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("x.json")}
		}, "error"},
		"hostPath volume": {func(p *corev1.Pod) {
			p.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var"}}
		}, "error"},
		"subPath":              {func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "x" }, "error"},
		"relative mountPath":   {func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].MountPath = "tmp" }, "error"},
		"a mount of no volume": {func(p *corev1.Pod) { p.Spec.Volumes = p.Spec.Volumes[1:] }, "error"},
	} {
		pod := chartPod()
		tc.mutate(pod)
		pp, ok, err := o.pharosPodOf(pod)
		switch {
		case !ok:
			t.Errorf("%s: not a Pharos pod", name)
		case tc.want == "error" && err == nil:
			t.Errorf("%s: accepted", name)
		case tc.want != "error" && (err != nil || pp.seccomp != tc.want):
			t.Errorf("%s: %+v, %v; want seccomp %s", name, pp, err, tc.want)
		case err != nil:
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestPharosPodFromRootfs: with an unpacked image, a pod runs the image's
// own file for its command, and only if it names the image the node has.
func TestPharosPodFromRootfs(t *testing.T) {
	root := t.TempDir()
	for name, mode := range map[string]os.FileMode{"controller": 0o755, "speaker": 0o644} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	// An absolute link resolves inside the image, not on this machine.
	if err := os.Symlink("/controller", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	o := pharosOptions()
	o.PharosBinaries = nil
	o.PharosRootfs = root
	o.PharosImageRef = "ghcr.io/pharos-lb/pharos:dev"
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	for command, want := range map[string]string{"/controller": "controller", "/alias": "controller"} {
		pod := pharosTestPod()
		pod.Spec.Containers[0].Command = []string{command}
		pp, ok, err := o.pharosPodOf(pod)
		if !ok || err != nil || pp.binary != filepath.Join(root, want) {
			t.Errorf("command %s: ok %v err %v binary %q, want %s", command, ok, err, pp.binary, filepath.Join(root, want))
		}
	}
	for name, tc := range map[string]struct{ image, command, want string }{
		"another tag":    {"ghcr.io/pharos-lb/pharos:0.1.0", "/controller", "is not on this node"},
		"not in image":   {"", "/bin/sh", "is not in the image"},
		"not executable": {"", "/speaker", "not an executable file"},
		"relative":       {"", "controller", "not an absolute path"},
	} {
		pod := pharosTestPod()
		if tc.image != "" {
			pod.Spec.Containers[0].Image = tc.image
		}
		pod.Spec.Containers[0].Command = []string{tc.command}
		if _, ok, err := o.pharosPodOf(pod); !ok || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ok %v err %v, want %q", name, ok, err, tc.want)
		}
	}
}

func TestRunAs(t *testing.T) {
	type ids struct{ uid, gid int64 }
	for name, tc := range map[string]struct {
		pod       *corev1.PodSecurityContext
		container *corev1.SecurityContext
		want      ids
		groups    []int64
	}{
		"image user":              {want: ids{65532, 65532}},
		"root from the container": {container: &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)}, want: ids{0, 0}},
		"image user spelled out":  {pod: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](65532)}, want: ids{65532, 65532}},
		"other user, no group":    {pod: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, want: ids{1000, 0}},
		"container beats pod": {
			pod:       &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)},
			container: &corev1.SecurityContext{RunAsUser: ptr.To[int64](2000), RunAsGroup: ptr.To[int64](3000)},
			want:      ids{2000, 3000},
		},
		"groups": {
			pod:  &corev1.PodSecurityContext{SupplementalGroups: []int64{5, 6}, FSGroup: ptr.To[int64](7)},
			want: ids{65532, 65532}, groups: []int64{5, 6, 7},
		},
	} {
		pod := pharosTestPod()
		pod.Spec.SecurityContext = tc.pod
		pod.Spec.Containers[0].SecurityContext = tc.container
		uid, gid, groups, err := runAs(pod, &pod.Spec.Containers[0], 65532, 65532)
		if err != nil || (ids{uid, gid}) != tc.want || !slices.Equal(groups, tc.groups) {
			t.Errorf("%s: %d:%d %v %v, want %v %v", name, uid, gid, groups, err, tc.want, tc.groups)
		}
	}
}

func TestRestarts(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		code   int32
		want   bool
	}{
		{corev1.RestartPolicyAlways, 0, true},
		{corev1.RestartPolicyAlways, 1, true},
		{corev1.RestartPolicyOnFailure, 0, false},
		{corev1.RestartPolicyOnFailure, 137, true},
		{corev1.RestartPolicyNever, 0, false},
		{corev1.RestartPolicyNever, 2, false},
	} {
		if got := restarts(tc.policy, tc.code); got != tc.want {
			t.Errorf("restarts(%s, %d) = %v", tc.policy, tc.code, got)
		}
	}
}

func TestCrashBackoff(t *testing.T) {
	var got []time.Duration
	for n := range 8 {
		got = append(got, crashBackoff(n))
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("back-offs %v", got)
	}
}

func TestReconcileUnsupportedPharosPod(t *testing.T) {
	pod := pharosTestPod()
	pod.Spec.Containers[0].Command = []string{"/bin/sh"}
	m, cs := managerWith(t, pod)
	m.opts = pharosOptions()
	if err := m.reconcile(context.Background(), "pharos-system/pharos-controller-abc"); err != nil {
		t.Fatal(err)
	}
	got, _ := cs.CoreV1().Pods("pharos-system").Get(context.Background(), pod.Name, metav1.GetOptions{})
	if got.Status.Phase != corev1.PodPending || len(got.Status.ContainerStatuses) != 1 ||
		got.Status.ContainerStatuses[0].State.Waiting == nil ||
		!strings.Contains(got.Status.ContainerStatuses[0].State.Waiting.Message, `command[0] one of /controller, /speaker`) {
		t.Fatalf("status %+v", got.Status)
	}
	if len(m.slots) != 0 {
		t.Fatal("unsupported pod got a slot")
	}
}

func TestContainerCaps(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		sc   *corev1.SecurityContext
		want []string
	}{
		{"nothing asked: the runtime's defaults", nil, runtimeDefaultCaps},
		{"drop ALL, add NET_RAW (the speaker)", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW"}}}, []string{"NET_RAW"}},
		{"drop ALL (the controller)", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}, []string{}},
		{"CAP_ prefix and lower case", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"all"}, Add: []corev1.Capability{"CAP_NET_ADMIN", "net_raw"}}}, []string{"NET_ADMIN", "NET_RAW"}},
		{"drop one default", &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}}, nil},
		{"privileged", &corev1.SecurityContext{Privileged: &yes}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerCaps(&corev1.Container{Name: "c", SecurityContext: tc.sc})
			if err != nil {
				t.Fatal(err)
			}
			switch tc.name {
			case "drop one default":
				if slices.Contains(got, "NET_RAW") || len(got) != len(runtimeDefaultCaps)-1 {
					t.Fatalf("got %v", got)
				}
			case "privileged":
				if len(got) != len(capNumbers) {
					t.Fatalf("privileged gets %d capabilities, want all %d", len(got), len(capNumbers))
				}
			default:
				want := slices.Sorted(slices.Values(tc.want))
				if !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
		})
	}
	if _, err := containerCaps(&corev1.Container{Name: "c", SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"FLY"}}}}); err == nil {
		t.Fatal("an unknown capability was accepted")
	}
}
