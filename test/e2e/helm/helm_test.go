//go:build e2e

// Package helm installs Pharos into the lab with its Helm chart, as a user
// would, and checks the chart's promises: the controller and speakers run
// under the chart's ServiceAccounts (so its RBAC is enough), a bad pool in
// values fails the install with the webhook's message, an upgrade moves no
// address, and an uninstall leaves nothing behind. It brings up its own lab
// (prefix pe2h) with nothing of Pharos installed; `make e2e` runs it after
// the main suite, never beside it.
//
// Pharos's pods run from its image, as a user would pull it: the suite
// builds the OCI archive with hack/image (make image-archive; or takes
// $PHAROS_IMAGE_ARCHIVE), the lab unpacks it, and the node agents run each
// pod's command from the image's files as the image's user. The chart is
// installed with the image values an air-gapped user gives for an
// imported archive (image.repository, image.tag, image.pullPolicy=Never).
// The processes still see this machine's filesystem (no chroot), read-only
// as their readOnlyRootFilesystem says, under the seccomp filter of
// RuntimeDefault, and the agents restart a controller whose liveness
// probe fails, as a kubelet does.
package helm

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

const (
	release = "pharos"
	ns      = "pharos-system"
)

var (
	lab   *cluster.Lab
	helm  string
	chart string
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func TestMain(m *testing.M) {
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	var err error
	if helm, err = cluster.HelmBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e helm setup:", err)
		return 1
	}
	root := repoRoot()
	chart = filepath.Join(root, "charts", "pharos")
	return cluster.RunSuite(m, root, cluster.SuiteOptions{Name: "e2e helm", Prefix: "pe2h", Out: filepath.Join(root, "_output", "e2e-helm"), Pharos: cluster.PharosNone, Image: true}, &lab)
}

// imageValues point the chart at the lab's image, as README's air-gapped
// install does for an imported archive.
func imageValues(t *testing.T) []string {
	t.Helper()
	ref := lab.PharosImageRef()
	i := strings.LastIndexByte(ref, ':')
	if i < 0 {
		t.Fatalf("the lab's image is %q, not repository:tag", ref)
	}
	return []string{"--set", "image.repository=" + ref[:i], "--set", "image.tag=" + ref[i+1:], "--set", "image.pullPolicy=Never"}
}

func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return lab.Helm(ctx, helm, args...)
}

// externalIPs returns the Service's status addresses.
func externalIPs(t *testing.T, svc string) []string {
	t.Helper()
	out := lab.MustKubectl(t, "get", "svc", svc, "-o", `jsonpath={range .status.loadBalancer.ingress[*]}{.ip}{" "}{end}`)
	return strings.Fields(out)
}

func url(ip string) string {
	if strings.Contains(ip, ":") {
		return "http://[" + ip + "]/"
	}
	return "http://" + ip + "/"
}

// TestChartLifecycle runs in order: a bad install, a good one, the
// webhook in the lab, an upgrade, RBAC taken away, and the uninstall.
func TestChartLifecycle(t *testing.T) {
	ctx := context.Background()

	t.Log("a values file with overlapping pools fails helm install with the webhook's message")
	out, err := runHelm(t, append([]string{"install", release, chart, "-n", ns, "--create-namespace", "--timeout", "3m",
		"--set", "pools[0].name=first", "--set", "pools[0].addresses[0]=" + cluster.DemoPoolV4,
		"--set", "pools[1].name=second", "--set", "pools[1].addresses[0]=198.18.100.128/25"}, imageValues(t)...)...)
	if err == nil {
		t.Fatalf("helm install with overlapping pools succeeded:\n%s", out)
	}
	for _, want := range []string{`admission webhook "ipaddresspools.pharos.io" denied the request`, `IPAddressPool.pharos.io "second" is invalid`, `IPAddressPool "first"`, "remove the overlap"} {
		if !strings.Contains(out, want) {
			t.Fatalf("helm install failed without %q:\n%s", want, out)
		}
	}
	if out, err := runHelm(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("uninstall of the failed release: %v\n%s", err, out)
	}
	cluster.Eventually(t, 30*time.Second, func() error {
		if pools := lab.MustKubectl(t, "get", "ipaddresspools", "-o", "name"); strings.TrimSpace(pools) != "" {
			return fmt.Errorf("pools left after uninstalling the failed release: %s", pools)
		}
		return nil
	})

	t.Log("helm install with a pool from values; the tutorial's Service answers on its address")
	start := time.Now()
	args := append(append([]string{"install", release, chart, "-n", ns, "--create-namespace", "--wait", "--timeout", "3m"}, cluster.ChartValuesDemoPool()...), imageValues(t)...)
	if out, err := runHelm(t, args...); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Logf("helm install --wait returned after %s", time.Since(start).Round(time.Millisecond))
	if err := lab.Apply(ctx, cluster.DemoApp); err != nil {
		t.Fatal(err)
	}
	ips, err := lab.WaitDemoAnswers(ctx, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("install to a Service answering on %v: %s", ips, time.Since(start).Round(time.Millisecond))
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		if !netip.MustParsePrefix(cluster.DemoPoolV4).Contains(a) && !netip.MustParsePrefix(cluster.DemoPoolV6).Contains(a) {
			t.Errorf("address %s is outside the pool given in values", ip)
		}
	}
	// Everything runs as the chart made it: the controllers under their
	// ServiceAccount, one elected, and the webhook's CA injected.
	sa := lab.MustKubectl(t, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=controller", "-o", `jsonpath={range .items[*]}{.spec.serviceAccountName}={.status.containerStatuses[0].ready}{"\n"}{end}`)
	if strings.Count(sa, "pharos-controller=true") != 2 {
		t.Errorf("controller pods (serviceAccount=ready): %q, want 2 ready pharos-controller", sa)
	}
	if holder := lab.MustKubectl(t, "-n", ns, "get", "lease", "pharos-controller", "-o", "jsonpath={.spec.holderIdentity}"); holder == "" {
		t.Error("no controller holds the leader Lease")
	}
	if ca := lab.MustKubectl(t, "get", "validatingwebhookconfiguration", "pharos-webhook", "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}"); len(ca) < 100 {
		t.Errorf("caBundle not injected: %q", ca)
	}
	// The processes have exactly the capabilities the chart's
	// securityContexts give: the speakers NET_RAW alone, which is enough
	// to announce (the Service answered above), the controllers none.
	// They run the image's files, as the image's user unless the chart
	// says otherwise (the speaker, as root).
	for argv0, want := range map[string]struct{ caps, uid string }{"/speaker": {"0000000000002000", "0"}, "/controller": {"0000000000000000", "65532"}} {
		got := pharosProcesses(t, argv0)
		if len(got) == 0 {
			t.Errorf("no %s process of this lab found", argv0)
		}
		for _, p := range got {
			if p.caps != want.caps {
				t.Errorf("a %s process runs with CapEff %s, want %s", argv0, p.caps, want.caps)
			}
			if exe := filepath.Join(lab.ImageRootfs(), argv0); p.exe != exe {
				t.Errorf("a %s process runs %s, not the image's %s", argv0, p.exe, exe)
			}
			if p.uid != want.uid {
				t.Errorf("a %s process runs as uid %s, want %s", argv0, p.uid, want.uid)
			}
		}
	}
	speakers := lab.MustKubectl(t, "-n", ns, "get", "ds", "pharos-speaker", "-o", "jsonpath={.status.numberReady}/{.status.desiredNumberScheduled}")
	if speakers != fmt.Sprintf("%d/%d", len(lab.Nodes), len(lab.Nodes)) {
		t.Errorf("speakers ready/desired %s", speakers)
	}

	t.Log("every controller and speaker runs as the chart's securityContexts say: seccomp RuntimeDefault, no_new_privs, a read-only root filesystem but for the controller's /tmp")
	checkConfinement(t)

	t.Log("a controller that stops answering its liveness probe is killed and restarted")
	checkLivenessRestart(t)

	t.Log("the webhook in the lab refuses an overlapping pool through kubectl")
	overlap := fmt.Sprintf("apiVersion: pharos.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: overlap}\nspec: {addresses: [%q]}\n", "198.18.100.10-198.18.100.20")
	if err := lab.Apply(ctx, overlap); err == nil || !strings.Contains(err.Error(), `IPAddressPool "demo"`) {
		t.Errorf("an overlapping pool got: %v", err)
	}

	t.Log("helm upgrade restarts every Pharos pod; no address moves and no request fails")
	demoUID := lab.MustKubectl(t, "get", "ipaddresspool", "demo", "-o", "jsonpath={.metadata.uid}")
	p, err := lab.StartProbeTimeout(lab.Client.Name, url(ips[0]), 20*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	upArgs := append(append([]string{"upgrade", release, chart, "-n", ns, "--wait", "--timeout", "3m", "--set", "logLevel=debug"}, cluster.ChartValuesDemoPool()...), imageValues(t)...)
	if out, err := runHelm(t, upArgs...); err != nil {
		p.Stop()
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	// Until every new speaker has joined.
	time.Sleep(3 * time.Second)
	attempts, _ := probe.Parse(strings.NewReader(p.Stop()))
	// Restarting every speaker moves the address at most once per node; a
	// connection in flight at such an instant may be reset (see
	// probe.Unexplained), no other may fail.
	if n := probe.Failures(attempts); len(probe.Unexplained(attempts, len(lab.Nodes))) > 0 || len(attempts) < 50 {
		t.Errorf("during the upgrade %d of %d requests failed (%s); want none but a connection reset at a hand-over, of at least 50", n, len(attempts), probe.Describe(attempts))
	} else if n > 0 {
		t.Logf("during the upgrade %d connections in flight at a hand-over were reset (%s); no other request failed", n, probe.Describe(attempts))
	} else {
		t.Logf("during the upgrade 0 of %d requests failed", len(attempts))
	}
	if got := externalIPs(t, "my-nginx"); strings.Join(got, " ") != strings.Join(ips, " ") {
		t.Errorf("addresses after the upgrade %v, before %v", got, ips)
	}
	if uid := lab.MustKubectl(t, "get", "ipaddresspool", "demo", "-o", "jsonpath={.metadata.uid}"); uid != demoUID {
		t.Errorf("the pool was recreated by the upgrade (uid %s, was %s); it must be adopted in place", uid, demoUID)
	}
	if owner := lab.MustKubectl(t, "get", "ipaddresspool", "demo", "-o", `jsonpath={.metadata.annotations.meta\.helm\.sh/release-name}`); owner != release {
		t.Errorf("the pool is not owned by the release after the upgrade: %q", owner)
	}
	if args := lab.MustKubectl(t, "-n", ns, "get", "deploy", "pharos-controller", "-o", "jsonpath={.spec.template.spec.containers[0].args}"); !strings.Contains(args, "debug") {
		t.Errorf("the upgrade did not reach the controller: args %s", args)
	}

	t.Log("without its RBAC, a controller says which permission it lacks")
	lab.MustKubectl(t, "delete", "clusterrolebinding", "pharos-controller")
	victim := strings.Fields(lab.MustKubectl(t, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=controller", "-o", "jsonpath={.items[*].metadata.name}"))[0]
	lab.MustKubectl(t, "-n", ns, "delete", "pod", victim, "--wait=false")
	cluster.Eventually(t, 60*time.Second, func() error {
		msgs := lab.MustKubectl(t, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=controller", "-o",
			`jsonpath={range .items[*]}{.status.containerStatuses[0].lastState.terminated.message}{.status.containerStatuses[0].state.terminated.message}{"\n"}{end}`)
		// The message is the end of the log, which lists every missing
		// permission with what it is for and where it is granted.
		if strings.Contains(msgs, `"system:serviceaccount:pharos-system:pharos-controller" may not `) && strings.Contains(msgs, "(needed to ") &&
			strings.Contains(msgs, "grant it to the controller's ServiceAccount") {
			return nil
		}
		return fmt.Errorf("no controller pod names its missing permission yet: %q", msgs)
	})
	// The same upgrade puts the binding back, and the pod recovers.
	if out, err := runHelm(t, upArgs...); err != nil {
		t.Fatalf("helm upgrade to restore RBAC: %v\n%s", err, out)
	}
	lab.MustKubectl(t, "-n", ns, "rollout", "status", "deploy/pharos-controller", "--timeout=120s")

	t.Log("a pool added by an upgrade goes with a rollback; the install's pool stays, so no address moves")
	extra := append(append([]string{}, upArgs...), "--set", "pools[1].name=extra", "--set", "pools[1].addresses[0]=198.18.101.0/24")
	if out, err := runHelm(t, extra...); err != nil {
		t.Fatalf("helm upgrade adding a pool: %v\n%s", err, out)
	}
	lab.MustKubectl(t, "get", "ipaddresspool,l2advertisement", "extra")
	// Revision 1 is the install, whose manifest lacks its hook-made pool:
	// Helm alone would delete "demo" here and take the Service's addresses.
	if out, err := runHelm(t, "rollback", release, "1", "-n", ns, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm rollback to the install: %v\n%s", err, out)
	}
	cluster.Eventually(t, 30*time.Second, func() error {
		if left := strings.TrimSpace(lab.MustKubectl(t, "get", "ipaddresspools", "-o", "name")); left != "ipaddresspool.pharos.io/demo" {
			return fmt.Errorf("pools after the rollback: %q, want only demo", left)
		}
		return nil
	})
	if uid := lab.MustKubectl(t, "get", "ipaddresspool", "demo", "-o", "jsonpath={.metadata.uid}"); uid != demoUID {
		t.Errorf("the rollback recreated the pool (uid %s, was %s)", uid, demoUID)
	}
	if got := externalIPs(t, "my-nginx"); strings.Join(got, " ") != strings.Join(ips, " ") {
		t.Errorf("addresses after the rollback %v, before %v", got, ips)
	}

	t.Log("helm uninstall leaves nothing behind")
	if out, err := runHelm(t, "uninstall", release, "-n", ns, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	cluster.Eventually(t, 60*time.Second, func() error {
		if pods := lab.MustKubectl(t, "-n", ns, "get", "pods", "-o", "name"); strings.TrimSpace(pods) != "" {
			return fmt.Errorf("pods left: %s", pods)
		}
		return nil
	})
	for _, q := range [][]string{
		{"get", "ipaddresspools,l2advertisements", "-o", "name"},
		{"get", "clusterroles,clusterrolebindings,validatingwebhookconfigurations", "-l", "app.kubernetes.io/instance=" + release, "-o", "name"},
		{"get", "-n", ns, "secrets,serviceaccounts,roles,rolebindings,services,daemonsets,deployments,jobs,leases", "-l", "app.kubernetes.io/instance=" + release, "-o", "name"},
		{"get", "-n", "kube-system", "roles,rolebindings", "-l", "app.kubernetes.io/instance=" + release, "-o", "name"},
		{"get", "-n", ns, "leases", "-o", "name"},
	} {
		if left := strings.TrimSpace(lab.MustKubectl(t, q...)); left != "" {
			t.Errorf("left behind: %s", left)
		}
	}
	if got := externalIPs(t, "my-nginx"); len(got) != 0 {
		t.Errorf("my-nginx still shows %v after its pool was uninstalled", got)
	}
	for _, n := range lab.Nodes {
		tables, err := lab.Exec(ctx, n.Name, "nft", "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tables, "pharos") {
			t.Errorf("%s keeps nftables tables: %s", n.Name, tables)
		}
		for _, what := range [][]string{{"addr"}, {"route"}, {"-6", "route"}} {
			state, err := lab.Exec(ctx, n.Name, append([]string{"ip"}, append(what, "show")...)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, ip := range ips {
				if strings.Contains(state, ip) {
					t.Errorf("%s: `ip %s` still shows %s:\n%s", n.Name, strings.Join(what, " "), ip, state)
				}
			}
		}
	}
	// Nobody answers for the address any more.
	v4 := ips[0]
	if strings.Contains(v4, ":") {
		v4 = ips[1]
	}
	if out, err := lab.Exec(ctx, lab.Client.Name, "arping", "-c", "3", "-w", "3", "-I", "eth0", v4); err == nil {
		t.Errorf("%s still answers ARP after uninstall:\n%s", v4, out)
	}
}

// pharosProcess is what /proc says of one Pharos process.
type pharosProcess struct {
	pid        int
	pod        string // its pod's name, from its KUBECONFIG's directory
	caps       string // CapEff
	uid, gid   string // effective
	exe        string // the file it runs
	seccomp    string // 2: a filter
	noNewPrivs string
	shdPnd     uint64          // signals pending for the process
	mounts     map[string]bool // mount point -> read-only, in its mount namespace
}

// pharosProcesses returns the Pharos processes of this lab whose argv[0]
// is argv0; the lab's agents give each a KUBECONFIG under its
// PodStateDir.
func pharosProcesses(t *testing.T, argv0 string) []pharosProcess {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var procs []pharosProcess
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), argv0+"\x00") {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil || !strings.Contains(string(environ), "KUBECONFIG="+lab.PodStateDir()+"/") {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
		if err != nil {
			continue
		}
		p := pharosProcess{mounts: map[string]bool{}}
		p.pid, _ = strconv.Atoi(pid)
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, "KUBECONFIG="); ok {
				// <state dir>/<node>/<namespace>_<pod>/kubeconfig
				_, p.pod, _ = strings.Cut(filepath.Base(filepath.Dir(v)), "_")
			}
		}
		p.exe, _ = os.Readlink(filepath.Join("/proc", pid, "exe"))
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "CapEff":
				p.caps = v
			case "Uid":
				if f := strings.Fields(v); len(f) > 1 {
					p.uid = f[1]
				}
			case "Gid":
				if f := strings.Fields(v); len(f) > 1 {
					p.gid = f[1]
				}
			case "Seccomp":
				p.seccomp = v
			case "NoNewPrivs":
				p.noNewPrivs = v
			case "ShdPnd":
				p.shdPnd, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...: the last mount at a
		// point is the one the process sees.
		mountinfo, _ := os.ReadFile(filepath.Join("/proc", pid, "mountinfo"))
		for _, line := range strings.Split(string(mountinfo), "\n") {
			if f := strings.Fields(line); len(f) > 5 {
				p.mounts[f[4]] = slices.Contains(strings.Split(f[5], ","), "ro")
			}
		}
		procs = append(procs, p)
	}
	return procs
}

// checkConfinement checks, from outside Pharos, that each controller and
// speaker process runs as the chart's securityContexts ask: seccomp
// RuntimeDefault (a filter: Seccomp 2) with no_new_privs
// (allowPrivilegeEscalation: false), and a read-only root filesystem
// (readOnlyRootFilesystem): / is mounted read-only in its mount namespace
// and a write there fails, while the controller's /tmp is its own
// writable emptyDir, not this machine's /tmp.
func checkConfinement(t *testing.T) {
	t.Helper()
	for _, argv0 := range []string{"/controller", "/speaker"} {
		for _, p := range pharosProcesses(t, argv0) {
			what := fmt.Sprintf("%s of pod %s (pid %d)", argv0, p.pod, p.pid)
			if p.seccomp != "2" || p.noNewPrivs != "1" {
				t.Errorf("%s: Seccomp %q NoNewPrivs %q, want 2 and 1", what, p.seccomp, p.noNewPrivs)
			}
			if ro, ok := p.mounts["/"]; !ok || !ro {
				t.Errorf("%s: / is not mounted read-only in its mount namespace (mounts %v)", what, p.mounts)
			}
			// As root with every capability, in the process's mount
			// namespace: only the mount's read-only flag stops the write.
			probe := fmt.Sprintf("/pharos-e2e-rootfs-%d", p.pid)
			out, err := exec.Command("nsenter", "-t", strconv.Itoa(p.pid), "-m", "--", "touch", probe).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Read-only file system") {
				_ = os.Remove(probe)
				t.Errorf("%s: touch %s in its mount namespace: %v %s, want Read-only file system", what, probe, err, out)
			}
			if argv0 != "/controller" {
				continue
			}
			if ro, ok := p.mounts["/tmp"]; !ok || ro {
				t.Errorf("%s: /tmp is not a writable mount of its own (mounts %v)", what, p.mounts)
			}
			volume := fmt.Sprintf("/tmp/pharos-e2e-volume-%d", p.pid)
			if out, err := exec.Command("nsenter", "-t", strconv.Itoa(p.pid), "-m", "-S", p.uid, "-G", p.gid, "--", "touch", volume).CombinedOutput(); err != nil {
				t.Errorf("%s: touch %s as uid %s in its mount namespace: %v %s", what, volume, p.uid, err, out)
			}
			if _, err := os.Stat(volume); err == nil {
				_ = os.Remove(volume)
				t.Errorf("%s: a write to its /tmp reached this machine's /tmp", what)
			}
		}
	}
}

// checkLivenessRestart stops (SIGSTOP) the controller that does not lead,
// so that its liveness probe times out, and waits for the node agent to
// kill it as a kubelet does: the SIGTERM is pending within periodSeconds
// times failureThreshold (plus the probes' timeouts and a margin). The
// test then resumes the process, which lets it act on that SIGTERM rather
// than wait out its 30 s grace period for the SIGKILL, and sees the pod
// restarted: a new process, restartCount 1, Ready again.
func checkLivenessRestart(t *testing.T) {
	t.Helper()
	holder := lab.MustKubectl(t, "-n", ns, "get", "lease", "pharos-controller", "-o", "jsonpath={.spec.holderIdentity}")
	var victim pharosProcess
	for _, p := range pharosProcesses(t, "/controller") {
		if p.pod != "" && !strings.HasPrefix(holder, p.pod+"_") {
			victim = p
		}
	}
	if victim.pid == 0 {
		t.Fatalf("no controller process outside the leader %q", holder)
	}
	podQuery := func(jsonpath string) string {
		return lab.MustKubectl(t, "-n", ns, "get", "pod", victim.pod, "-o", "jsonpath="+jsonpath)
	}
	var period, failures, timeout int
	if _, err := fmt.Sscan(podQuery(`{.spec.containers[0].livenessProbe.periodSeconds} {.spec.containers[0].livenessProbe.failureThreshold} {.spec.containers[0].livenessProbe.timeoutSeconds}`), &period, &failures, &timeout); err != nil {
		t.Fatalf("the controller's livenessProbe: %v", err)
	}
	node := podQuery("{.spec.nodeName}")
	budget := time.Duration(period*failures+timeout*failures)*time.Second + 10*time.Second
	t.Logf("stopping controller pod %s (pid %d) on %s; liveness: every %d s, %d failures", victim.pod, victim.pid, node, period, failures)
	if err := syscall.Kill(victim.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(victim.pid, syscall.SIGCONT)
		}
	}
	defer resume()
	start := time.Now()
	cluster.Eventually(t, budget, func() error {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", victim.pid))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
				if pending, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64); pending&(1<<(syscall.SIGTERM-1)) != 0 {
					return nil
				}
			}
		}
		return fmt.Errorf("no SIGTERM pending for the stopped controller after %s", time.Since(start).Round(time.Second))
	})
	killedAfter := time.Since(start)
	resume()
	cluster.Eventually(t, 60*time.Second, func() error {
		if got := podQuery(`{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}`); got != "1 true" {
			return fmt.Errorf("controller pod %s: restartCount and ready %q, want \"1 true\"", victim.pod, got)
		}
		for _, p := range pharosProcesses(t, "/controller") {
			if p.pod == victim.pod && p.pid != victim.pid {
				return nil
			}
		}
		return fmt.Errorf("no new process for controller pod %s", victim.pod)
	})
	t.Logf("the agent sent SIGTERM %s after SIGSTOP (at most %d s × %d failures), and the pod was Ready again with restartCount 1 %s after it",
		killedAfter.Round(100*time.Millisecond), period, failures, (time.Since(start) - killedAfter).Round(100*time.Millisecond))
	agentLog, err := os.ReadFile(filepath.Join(lab.LogDir(), node+"-agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(agentLog), `msg="liveness probe failed; killing the container to restart it" node=`+node+` pod=`+ns+"/"+victim.pod+" "); n != 1 {
		t.Errorf("%s's agent logged the liveness kill of %s %d times, want once", node, victim.pod, n)
	}
}
