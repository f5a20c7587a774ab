package agent

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pharos-lb/pharos/test/lab/echo"
)

// The end-to-end test below needs root and creates network namespaces, so
// it runs only when asked: LAB_AGENT_NETNS_TEST=1 go test ./test/lab/agent/
// Everything it creates is named plabtest-<pid>-* and uses 198.18.250.0/24
// and 2001:db8:250::/64, and is removed at the end.
const (
	envNetnsTest  = "LAB_AGENT_NETNS_TEST"
	envInner      = "LAB_AGENT_NETNS_INNER"
	envEchoHelper = "LAB_AGENT_ECHO_HELPER"
	// The test binary is also the pod launcher (ExecPod) and the binary
	// of the Pharos pods of TestPharosPodsInNetns (fakePharos).
	envPodExecHelper = "LAB_AGENT_PODEXEC_HELPER"
	envFakePharos    = "LAB_AGENT_FAKE_PHAROS"
)

// TestMain lets the test binary double as the echo command, the pod
// launcher and a Pharos binary, so the tests need no other binary.
func TestMain(m *testing.M) {
	if os.Getenv(envPodExecHelper) == "1" {
		// Not passed on: the binary it execs is this one again.
		_ = os.Unsetenv(envPodExecHelper)
		err := ExecPod(os.Args[1:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv(envFakePharos) == "1" {
		fakePharos()
		return
	}
	if os.Getenv(envSeccompHelper) == "1" {
		seccompHelper()
		return
	}
	if os.Getenv(envMountsHelper) == "1" {
		mountsHelper()
		return
	}
	if os.Getenv(envEchoHelper) == "1" {
		fs := flag.NewFlagSet("echo", flag.ExitOnError)
		pod := fs.String("pod", "", "")
		node := fs.String("node", "", "")
		ports := fs.String("ports", "80", "")
		_ = fs.Parse(os.Args[1:])
		var ps []int
		for _, s := range strings.Split(*ports, ",") {
			p, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bad port", s)
				os.Exit(2)
			}
			ps = append(ps, p)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := echo.Serve(ctx, echo.Options{Pod: *pod, Node: *node, Ports: ps}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustIP(t *testing.T, args ...string) {
	t.Helper()
	if _, err := runIP(context.Background(), args...); err != nil {
		t.Fatal(err)
	}
}

// TestPodsInNetns runs echo pods in a node netns.
func TestPodsInNetns(t *testing.T) {
	inNodeNetns(t, "TestPodsInNetns", "e", podsInNetns)
}

// inNodeNetns builds a node netns with a pod bridge, then re-runs this
// test binary's test name inside it, where the agent's process really is in
// the node's namespace as in the lab, and inner runs there.
func inNodeNetns(t *testing.T, name, tag string, inner func(*testing.T)) {
	if os.Getenv(envInner) != "" {
		inner(t)
		return
	}
	if os.Getenv(envNetnsTest) == "" || os.Geteuid() != 0 {
		t.Skipf("set %s=1 and run as root to create network namespaces", envNetnsTest)
	}
	base := fmt.Sprintf("plabtest-%d%s-", os.Getpid(), tag)
	node := base + "node"
	t.Cleanup(func() {
		if err := Cleanup(base); err != nil {
			t.Error(err)
		}
	})
	mustIP(t, "netns", "add", node)
	mustIP(t, "-n", node, "link", "set", "lo", "up")
	mustIP(t, "-n", node, "link", "add", "br0", "type", "bridge")
	mustIP(t, "-n", node, "addr", "add", "198.18.250.1/24", "dev", "br0")
	mustIP(t, "-n", node, "addr", "add", "2001:db8:250::1/64", "dev", "br0", "nodad")
	mustIP(t, "-n", node, "link", "set", "br0", "up")

	cmd := exec.Command("ip", "netns", "exec", node, os.Args[0], "-test.run", "^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envInner+"="+base)
	out, err := cmd.CombinedOutput()
	t.Logf("inner run:\n%s", out)
	if err != nil {
		t.Fatalf("inner run failed: %v", err)
	}
	// The stopped agent left its running pods' netns in place, as the lab
	// wants; Cleanup is what removes them.
	if err := Cleanup(base); err != nil {
		t.Fatal(err)
	}
	if left, _ := listNetns(context.Background(), base); len(left) != 0 {
		t.Errorf("netns left after Cleanup: %v", left)
	}
}

func newTestPod(name string, ports ...int32) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName:   "plabtest-n1",
			Containers: []corev1.Container{{Name: "web", Image: "echo:test"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, port := range ports {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: port})
	}
	return p
}

func podsInNetns(t *testing.T) {
	base := os.Getenv(envInner)
	prefix := base + "p"
	opts := Options{
		Kubeconfig:     "unused",
		NodeName:       "plabtest-n1",
		InternalIPs:    mustAddrs("198.18.251.1", "2001:db8:251::1"),
		PodCIDRs:       mustPrefixes("198.18.250.0/24", "2001:db8:250::/64"),
		Bridge:         "br0",
		PodNetnsPrefix: prefix,
		EchoCommand:    []string{"env", envEchoHelper + "=1", os.Args[0]},
		LogDir:         t.TempDir(),
	}
	if err := opts.normalize(); err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset(newTestPod("web-1", 8080, 80), newTestPod("web-2"))
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", opts.NodeName)
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")

	start := func() (*podManager, func()) {
		pm := newPodManager(cs, opts, log)
		c, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { pm.run(c); close(done) }()
		return pm, func() { cancel(); <-done }
	}
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
	running := func(restarts int32) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			return p != nil && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 &&
				p.Status.ContainerStatuses[0].RestartCount == restarts
		}
	}
	httpGet := func(url string) string {
		t.Helper()
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	_, stop := start()
	p1 := waitPod("web-1", running(0))
	p2 := waitPod("web-2", running(0))
	// Both started concurrently, so which got .2 and which .3 is open.
	ip1, ip2 := p1.Status.PodIP, p2.Status.PodIP
	if got := []string{ip1, ip2}; !slices.Contains(got, "198.18.250.2") || !slices.Contains(got, "198.18.250.3") {
		t.Fatalf("pod IPs %v, want .2 and .3", got)
	}
	if len(p1.Status.PodIPs) != 2 || p1.Status.PodIPs[1].IP != strings.Replace(ip1, "198.18.250.", "2001:db8:250::", 1) {
		t.Fatalf("web-1 IPs %v", p1.Status.PodIPs)
	}
	for _, url := range []string{"http://" + ip1 + ":8080/", "http://" + ip1 + ":80/", "http://[" + p1.Status.PodIPs[1].IP + "]:8080/"} {
		body := httpGet(url)
		if !strings.HasPrefix(body, "pod=web-1 node=plabtest-n1 client=") {
			t.Errorf("%s: %q", url, body)
		}
		t.Logf("%s -> %s", url, strings.TrimSpace(body))
	}
	if body := httpGet("http://" + ip2 + "/"); !strings.HasPrefix(body, "pod=web-2 node=plabtest-n1 client=198.18.250.1:") {
		t.Errorf("web-2: %q", body)
	}

	// Kill web-1's server behind the agent's back: it is restarted.
	ns1 := strings.TrimPrefix(p1.Status.ContainerStatuses[0].ContainerID, "lab://")
	pids, err := runIP(ctx, "netns", "pids", ns1)
	if err != nil || strings.TrimSpace(pids) == "" {
		t.Fatalf("pids in %s: %q %v", ns1, pids, err)
	}
	for _, f := range strings.Fields(pids) {
		pid, _ := strconv.Atoi(f)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitPod("web-1", running(1))
	httpGet("http://" + ip1 + ":8080/")

	// Graceful deletion: the agent stops it, removes the netns and finalizes.
	p1, _ = pods.Get(ctx, "web-1", metav1.GetOptions{})
	now := metav1.Now()
	p1.DeletionTimestamp = &now
	if _, err := pods.Update(ctx, p1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod("web-1", func(p *corev1.Pod) bool { return p == nil })
	deadline := time.Now().Add(10 * time.Second)
	for netnsExists(ns1) {
		if time.Now().After(deadline) {
			t.Fatalf("netns %s not removed", ns1)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The freed address is reused: lowest free first.
	if _, err := pods.Create(ctx, newTestPod("web-3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p3 := waitPod("web-3", running(0)); p3.Status.PodIP != ip1 {
		t.Errorf("web-3 got %s, want web-1's freed %s", p3.Status.PodIP, ip1)
	}
	httpGet("http://" + ip1 + "/")
	stop()
	if _, err := http.Get("http://" + ip2 + "/"); err == nil {
		t.Error("echo servers still answer after the agent stopped")
	}

	// Restart: pods keep their netns and addresses, a leftover netns goes,
	// and the new agent's first new pod does not collide with them.
	orphan := prefix + "9"
	mustIP(t, "netns", "add", orphan)
	_, stop = start()
	p2 = waitPod("web-2", running(1))
	if p2.Status.PodIP != ip2 {
		t.Errorf("web-2 moved from %s to %s after restart", ip2, p2.Status.PodIP)
	}
	httpGet("http://" + ip2 + "/")
	if _, err := pods.Create(ctx, newTestPod("web-4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p4 := waitPod("web-4", running(0)); p4.Status.PodIP != "198.18.250.4" {
		t.Errorf("web-4 got %s, want 198.18.250.4", p4.Status.PodIP)
	}
	if netnsExists(orphan) {
		t.Error("leftover netns not removed")
	}
	// A pod removed outright (no graceful deletion) is cleaned up too.
	p4, _ := pods.Get(ctx, "web-4", metav1.GetOptions{})
	ns4 := strings.TrimPrefix(p4.Status.ContainerStatuses[0].ContainerID, "lab://")
	if err := pods.Delete(ctx, "web-4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for netnsExists(ns4) {
		if time.Now().After(deadline) {
			t.Fatalf("netns %s not removed", ns4)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()

	// The bridge kept the MAC the agent pinned, through all that churn.
	if out, _ := runIP(ctx, "link", "show", "br0"); !strings.Contains(out, "0a:58:c6:12:fa:01") {
		t.Errorf("bridge MAC not pinned: %s", out)
	}

	// A pod that cannot be wired (no such bridge) is reported Pending and
	// not Ready with the ip error, and its half-built netns is removed.
	bad := opts
	bad.Bridge, bad.PodNetnsPrefix = "nosuchbr", base+"q"
	cs = fake.NewClientset(newTestPod("web-9"))
	pods = cs.CoreV1().Pods("default")
	pm := newPodManager(cs, bad, log)
	c, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { pm.run(c); close(done) }()
	p9 := waitPod("web-9", func(p *corev1.Pod) bool {
		return p != nil && p.Status.Phase == corev1.PodPending && podConditionIs(p.Status.Conditions, corev1.PodReady, corev1.ConditionFalse)
	})
	for _, c := range p9.Status.Conditions {
		if c.Type == corev1.PodReady && !strings.Contains(c.Message, "nosuchbr") {
			t.Errorf("failure message %q does not name the bridge", c.Message)
		}
	}
	// Checked within the 1 s backoff before the retry, so the netns must
	// be gone rather than rebuilt.
	if netnsExists(base + "q1") {
		t.Error("netns of a failed pod left behind")
	}
	cancel()
	<-done
}

func mustAddrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func mustPrefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}
