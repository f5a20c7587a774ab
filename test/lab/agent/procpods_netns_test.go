package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// fakePharos stands in for a Pharos binary: it prints who it runs as, its
// argv, the network interfaces /sys shows and the token its kubeconfig
// points at, its seccomp mode and no_new_privs (and with --check-rootfs
// whether / and /tmp take a write), then, by its flags, exits
// with a code (--exit=N) or serves until SIGTERM (--serve=PORT), failing
// /healthz with --sick.
func fakePharos() {
	groups, _ := syscall.Getgroups()
	host, _ := os.Hostname()
	fmt.Printf("uid=%d gid=%d groups=%v hostname=%s argv=%q\n", os.Getuid(), os.Getgid(), groups, host, os.Args)
	var links []string
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		links = append(links, e.Name())
	}
	fmt.Printf("links=%v\n", links)
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		cfg, err := clientcmd.LoadFromFile(kc)
		if err != nil {
			fmt.Println("kubeconfig:", err)
		} else {
			ctx := cfg.Contexts[cfg.CurrentContext]
			tok, err := os.ReadFile(cfg.AuthInfos[ctx.AuthInfo].TokenFile)
			fmt.Printf("server=%s user=%s namespace=%s token=%s err=%v\n", cfg.Clusters[ctx.Cluster].Server, ctx.AuthInfo, ctx.Namespace, tok, err)
		}
	}
	if slices.Contains(os.Args, "--check-rootfs") {
		// Only for pods with a read-only root: a write to / that worked
		// would land on this machine.
		for _, p := range []string{"/plabtest-rootfs-check", "/tmp/plabtest-volume-check"} {
			err := os.WriteFile(p, []byte("x"), 0o644)
			if errors.Is(err, syscall.EROFS) {
				err = syscall.EROFS
			}
			fmt.Printf("write %s: %v\n", p, err)
		}
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Seccomp:") || strings.HasPrefix(l, "NoNewPrivs:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
	sick := slices.Contains(os.Args, "--sick")
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "--exit="); ok {
			code, _ := strconv.Atoi(v)
			fmt.Println("exiting with", code)
			os.Exit(code)
		}
		if v, ok := strings.CutPrefix(a, "--serve="); ok {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			defer stop()
			srv := &http.Server{Addr: ":" + v, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if sick && r.URL.Path == "/healthz" {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				_, _ = w.Write([]byte("ok"))
			})}
			go func() { _ = srv.ListenAndServe() }()
			<-ctx.Done()
			fmt.Println("got SIGTERM")
			_ = srv.Close()
			os.Exit(0)
		}
	}
	os.Exit(0)
}

// TestPharosPodsInNetns runs pods of the Pharos image as real processes
// (this test binary in fakePharos mode) in a node netns.
func TestPharosPodsInNetns(t *testing.T) {
	inNodeNetns(t, "TestPharosPodsInNetns", "p", pharosPodsInNetns)
}

func newPharosTestPod(name string, policy corev1.RestartPolicy, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName:           "plabtest-n1",
			ServiceAccountName: "pharos",
			RestartPolicy:      policy,
			Containers: []corev1.Container{{
				Name: "c", Image: "ghcr.io/pharos-lb/pharos:test", Command: []string{"/controller"}, Args: args,
				Env: []corev1.EnvVar{
					{Name: envFakePharos, Value: "1"},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				},
			}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
}

func pharosPodsInNetns(t *testing.T) {
	base := os.Getenv(envInner)
	// Searchable by the pods' user, as the lab's /run/<prefix>-lab is,
	// and, as there, not under a pod's volume (the server's /tmp).
	state, err := os.MkdirTemp("/run", "plabtest-state-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(state, "ca.crt")
	if err := os.WriteFile(ca, []byte("not really a CA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	opts := Options{
		Kubeconfig:     "unused",
		NodeName:       "plabtest-n1",
		InternalIPs:    mustAddrs("198.18.251.1", "2001:db8:251::1"),
		PodCIDRs:       mustPrefixes("198.18.250.0/24", "2001:db8:250::/64"),
		Bridge:         "br0",
		PodNetnsPrefix: base + "p",
		EchoCommand:    []string{"env", envEchoHelper + "=1", os.Args[0]},
		LogDir:         logs,
		PharosImage:    "ghcr.io/pharos-lb/pharos",
		// The test binary lives in a directory only root can search, which
		// is what the launcher's exec through /proc/self/fd is for.
		PharosBinaries: map[string]string{"/controller": os.Args[0]},
		PharosUID:      65532, PharosGID: 65532,
		LaunchCommand: []string{"env", envPodExecHelper + "=1", os.Args[0]},
		APIServer:     "https://198.18.96.2:6443", APIServerCA: ca,
		StateDir: filepath.Join(state, "n1"),
	}
	if err := opts.normalize(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}

	server := newPharosTestPod("server", corev1.RestartPolicyAlways, "--serve=7473", "--ns=$(POD_NAMESPACE)")
	server.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	server.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(7473)}},
		PeriodSeconds: 1, FailureThreshold: 3, TimeoutSeconds: 1, SuccessThreshold: 1,
	}
	// As the chart's controller is confined.
	server.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	server.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)}
	server.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	server.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	server.Spec.Containers[0].Args = append(server.Spec.Containers[0].Args, "--check-rootfs")
	// Fails its liveness probe once started: killed (SIGTERM) and
	// restarted, again and again.
	sick := newPharosTestPod("sick", corev1.RestartPolicyAlways, "--serve=7473", "--sick")
	sick.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(7473)}},
		PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1, SuccessThreshold: 1,
	}
	host := newPharosTestPod("host", corev1.RestartPolicyOnFailure, "--exit=0")
	host.Spec.HostNetwork = true
	// RuntimeDefault without no_new_privs: the launcher installs the
	// filter while still root.
	host.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	crash := newPharosTestPod("crash", corev1.RestartPolicyAlways, "--exit=1")
	cs := fake.NewClientset(server, host, crash, sick,
		newPharosTestPod("job-ok", corev1.RestartPolicyNever, "--exit=0"),
		newPharosTestPod("job-fail", corev1.RestartPolicyNever, "--exit=3"))
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		ref := tr.Spec.BoundObjectRef
		if ref == nil || ref.Kind != "Pod" || ref.UID == "" || *tr.Spec.ExpirationSeconds != 3600 {
			return true, nil, fmt.Errorf("unexpected token request %+v", tr.Spec)
		}
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: "token-for-" + ref.Name, ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour)),
		}}, nil
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", opts.NodeName)
	ctx, cancel := context.WithCancel(context.Background())
	pm := newPodManager(cs, opts, log)
	done := make(chan struct{})
	go func() { pm.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	pods := cs.CoreV1().Pods("default")
	waitPod := func(name string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err == nil && ok(p) || err != nil && ok(nil) && apierrors.IsNotFound(err) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s: condition not reached; last %+v (err %v)", name, p.Status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	logOf := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(logs, "default_"+name+".log"))
		return string(b)
	}
	phase := func(ph corev1.PodPhase) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == ph }
	}

	// A server in its own netns, as the image's user, Ready through its
	// probe, with its ServiceAccount's token and $(VAR) args.
	p := waitPod("server", func(p *corev1.Pod) bool {
		return p != nil && p.Status.Phase == corev1.PodRunning && podConditionIs(p.Status.Conditions, corev1.PodReady, corev1.ConditionTrue)
	})
	if !strings.HasPrefix(p.Status.PodIP, "198.18.250.") {
		t.Errorf("server pod IP %s", p.Status.PodIP)
	}
	l := logOf("server")
	for _, want := range []string{
		"uid=65532 gid=65532 groups=[] hostname=server", `"/controller" "--serve=7473" "--ns=default"`,
		// A read-only root but for its emptyDir, RuntimeDefault and
		// no_new_privs.
		"write /plabtest-rootfs-check: read-only file system", "write /tmp/plabtest-volume-check: <nil>",
		"Seccomp: 2", "NoNewPrivs: 1",
		"server=https://198.18.96.2:6443 user=system:serviceaccount:default:pharos namespace=default token=token-for-server err=<nil>",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("server log lacks %q:\n%s", want, l)
		}
	}

	// Jobs end: exit 0 is Succeeded, anything else Failed, with the code
	// and the log's end.
	p = waitPod("job-ok", phase(corev1.PodSucceeded))
	if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("job-ok state %+v", p.Status.ContainerStatuses[0].State)
	}
	p = waitPod("job-fail", phase(corev1.PodFailed))
	if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 3 || !strings.Contains(st.Message, "exiting with 3") {
		t.Errorf("job-fail state %+v", p.Status.ContainerStatuses[0].State)
	}

	// hostNetwork: the node's addresses, as root.
	p = waitPod("host", phase(corev1.PodSucceeded))
	if p.Status.PodIP != "198.18.251.1" || len(p.Status.PodIPs) != 2 {
		t.Errorf("host pod IPs %v", p.Status.PodIPs)
	}
	// The node's /sys too, not the machine's.
	if l := logOf("host"); !strings.Contains(l, "uid=0 gid=0 groups=[] hostname=plabtest-n1") || !strings.Contains(l, "links=[br0 lo") ||
		!strings.Contains(l, "NoNewPrivs: 0\nSeccomp: 2\n") {
		t.Errorf("host log:\n%s", l)
	}

	// A crashing process is restarted after a back-off, the last exit on
	// record.
	p = waitPod("crash", func(p *corev1.Pod) bool {
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	if p.Status.Phase != corev1.PodRunning || p.Status.ContainerStatuses[0].LastTerminationState.Terminated == nil ||
		p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("crash status %+v", p.Status)
	}

	// The emptyDir is the agent's directory, not the machine's /tmp.
	if _, err := os.Stat("/tmp/plabtest-volume-check"); err == nil {
		t.Error("the server's write to its /tmp volume reached this machine's /tmp")
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, "volumes", "uid-server", "tmp", "plabtest-volume-check")); err != nil {
		t.Errorf("the server's volume: %v", err)
	}

	// A failing liveness probe: killed with SIGTERM, then restarted as
	// any exited container is.
	p = waitPod("sick", func(p *corev1.Pod) bool {
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || !strings.Contains(last.Message, "got SIGTERM") {
		t.Errorf("sick status %+v", p.Status.ContainerStatuses[0])
	}

	// Deletion: SIGTERM, then the pod goes and so do its credentials.
	p, _ = pods.Get(ctx, "server", metav1.GetOptions{})
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To[int64](5)
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod("server", func(p *corev1.Pod) bool { return p == nil })
	if l := logOf("server"); !strings.Contains(l, "got SIGTERM") {
		t.Errorf("server not stopped by SIGTERM:\n%s", l)
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, "default_server")); !os.IsNotExist(err) {
		t.Errorf("credentials of a deleted pod: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, "volumes", "uid-server")); !os.IsNotExist(err) {
		t.Errorf("volumes of a deleted pod: %v", err)
	}
}
