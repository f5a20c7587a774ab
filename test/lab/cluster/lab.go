package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Options configure a lab.
type Options struct {
	// Prefix starts the name of every namespace of the lab ("plab").
	Prefix string
	// NodeCount is the number of Kubernetes nodes (3).
	NodeCount int
	// Dir holds kubeconfigs, keys, logs and state ("_output/lab").
	Dir string
	// KubeBinDir holds kube-apiserver, kube-controller-manager,
	// kube-scheduler, kube-proxy, kubectl and etcd.
	KubeBinDir string
	// LabBinary is the lab command itself, which also runs the node agents
	// and the pods' echo servers.
	LabBinary string
	// ControllerBinary is Pharos's controller; empty skips it.
	ControllerBinary string
	// SpeakerBinary is Pharos's speaker, run on every node; empty skips it.
	SpeakerBinary string
	// PluginBinary is kubectl-pharos, the kubectl plugin (see
	// Lab.KubectlPlugin).
	PluginBinary string
	// RepoRoot is the repository, for the CRDs and RBAC in config/.
	RepoRoot string
	// Pharos says how Pharos gets into the lab: PharosProcesses (the
	// default) installs config/'s CRDs and RBAC and runs the controller
	// and speakers as lab components; PharosNone installs nothing, for a
	// test that installs the Helm chart. Either way the node agents run
	// pods of PharosImage as the real ControllerBinary and SpeakerBinary
	// (command /controller and /speaker), under the pod's ServiceAccount,
	// or, with PharosImageArchive, from the image's own files.
	Pharos string
	// PharosImageArchive is an OCI archive of Pharos's image (make
	// image-archive). With it, Up unpacks the image (ImageRootfs) and the
	// node agents run the pods that name it (its repository and tag, as
	// the archive names it) from the image's own files, as the image's
	// user, instead of ControllerBinary and SpeakerBinary; a pod that
	// names another tag of the repository fails, as on an air-gapped node
	// with only this archive imported. The lab's own processes
	// (PharosProcesses) still run the binaries.
	PharosImageArchive string
	// IPv6First lists each node's IPv6 InternalIP before its IPv4 one, as
	// an IPv6-first dual-stack cluster does; the speakers then join over
	// IPv6 (memberlist binds the first InternalIP).
	IPv6First bool
	// SpeakerArgs are appended to every speaker's arguments (a bench's
	// --pprof-bind-address, say), ControllerArgs to the controller's.
	SpeakerArgs, ControllerArgs []string
	// NoKubeProxy leaves kube-proxy out, as a cluster whose CNI replaces
	// it (or K3s with --disable-kube-proxy): Services' ClusterIPs and
	// NodePorts then lead nowhere.
	NoKubeProxy bool
	// Out receives progress lines.
	Out io.Writer
}

// Values of Options.Pharos.
const (
	PharosProcesses = "processes"
	PharosNone      = "none"
)

// PharosImage is the repository of Pharos's image: the node agents run its
// pods (any tag) as the real binaries. PharosImageUser is the image's USER
// (uid and gid), which a pod without runAsUser runs as.
const (
	PharosImage     = "ghcr.io/pharos-lb/pharos"
	PharosImageUser = 65532
)

// Lab is a lab's topology and state directory.
type Lab struct {
	Options
	Topology
	adminToken string
	// image is PharosImageArchive's image, once Up has unpacked it.
	image *labImage
}

// New returns a lab handle; it changes nothing.
func New(o Options) (*Lab, error) {
	if o.Prefix == "" {
		o.Prefix = "plab"
	}
	if o.NodeCount <= 0 {
		o.NodeCount = 3
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	switch o.Pharos {
	case "":
		o.Pharos = PharosProcesses
	case PharosProcesses, PharosNone:
	default:
		return nil, fmt.Errorf("Options.Pharos is %q; want %q or %q", o.Pharos, PharosProcesses, PharosNone)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	return &Lab{Options: o, Topology: NewTopology(o.Prefix, o.NodeCount)}, nil
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.Out, "lab: "+format+"\n", args...)
}

// CheckHost says what is missing to run a lab on this machine.
func CheckHost() error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errNotRoot
	}
	for _, t := range []struct{ tool, pkg string }{
		{"ip", "iproute2"}, {"nsenter", "util-linux"}, {"nft", "nftables"},
		{"iptables", "iptables"}, {"conntrack", "conntrack"}, {"sysctl", "procps"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			return fmt.Errorf("the lab needs %s (Debian package %s), which is not on PATH: apt-get install %s, or hack/ci-deps.sh, which installs every package the lab needs", t.tool, t.pkg, t.pkg)
		}
	}
	return nil
}

// Kubeconfig returns the path of the admin kubeconfig.
func (l *Lab) Kubeconfig() string { return filepath.Join(l.Dir, "admin.kubeconfig") }

func (l *Lab) pkiDir() string { return filepath.Join(l.Dir, "pki") }

// PodStateDir holds the tokens and kubeconfigs the node agents write for
// Pharos pods. Pods that run as a user other than root read them by path,
// so it is under /run rather than l.Dir, whose parents (a home directory)
// may not be searchable by them; Down removes it.
func (l *Lab) PodStateDir() string { return "/run/" + l.Prefix + "-lab" }

// Up builds the lab from nothing: it first removes what an earlier lab of
// the same prefix left, and tears down what it built if a step fails.
func (l *Lab) Up(ctx context.Context) (err error) {
	if err := CheckHost(); err != nil {
		return err
	}
	start := time.Now()
	if err := l.Down(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Beside the lab's directory, which Down removes.
			logs := l.Dir + "-logs.failed"
			_ = os.RemoveAll(logs)
			_ = os.Rename(l.LogDir(), logs)
			_ = l.Down()
			err = fmt.Errorf("%w (the lab was torn down; component logs are in %s)", err, logs)
		}
	}()
	for _, dir := range []string{l.Dir, l.pkiDir(), l.LogDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"network", l.buildNetwork},
		{"credentials", l.writeCredentials},
		{"control plane", l.startControlPlane},
		{"image", l.unpackImage},
		{"nodes", l.startNodes},
		{"pharos", l.installPharos},
		{"ready", l.waitReady},
	}
	for _, s := range steps {
		if s.name == "image" && l.PharosImageArchive == "" {
			continue
		}
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("lab %s: %w", s.name, err)
		}
		l.logf("%s ready in %.1fs", s.name, time.Since(t).Seconds())
	}
	l.logf("up in %.1fs; kubectl: export KUBECONFIG=%s", time.Since(start).Seconds(), l.Kubeconfig())
	return nil
}

// Down removes every process, namespace and file of the lab. It is safe to
// call on a lab that does not exist or was half built.
func (l *Lab) Down() error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errNotRoot
	}
	entries, _ := os.ReadDir(l.procDir())
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".pid"); ok && !strings.HasSuffix(name, ".child") {
			// The group: a supervisor with its child.
			if pid, running := l.groupPID(name); running {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}
	namespaces := listNamespaces(l.Prefix)
	for _, ns := range namespaces {
		killNamespace(ns)
	}
	var failed []string
	for _, ns := range namespaces {
		if err := ip("", "netns", "del", ns); err != nil {
			failed = append(failed, err.Error())
		}
	}
	for _, dir := range []string{l.Dir, l.PodStateDir()} {
		if err := os.RemoveAll(dir); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("lab teardown left something behind: %s", strings.Join(failed, "; "))
	}
	return nil
}

// checkRunning fails if a component has exited.
func (l *Lab) checkRunning() error {
	names := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	pharos := l.Pharos != PharosNone
	if pharos && l.ControllerBinary != "" {
		names = append(names, "pharos-controller")
	}
	if pharos && l.ControllerBinary != "" && l.SpeakerBinary != "" {
		for _, n := range l.Nodes {
			names = append(names, n.Name+"-speaker")
		}
	}
	for _, n := range l.Nodes {
		names = append(names, n.Name+"-agent")
		if !l.NoKubeProxy {
			names = append(names, n.Name+"-proxy")
		}
	}
	for _, name := range names {
		if !l.Running(name) {
			return fmt.Errorf("%s exited; see %s", name, filepath.Join(l.LogDir(), name+".log"))
		}
	}
	return nil
}

// waitReady waits until every node is Ready and every component runs.
func (l *Lab) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(120 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		out, err := l.Kubectl(ctx, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		ready := 0
		if err == nil {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasSuffix(line, "=True") {
					ready++
				}
			}
		}
		if ready == len(l.Nodes) {
			// Components that fail on their flags exit within a second.
			time.Sleep(time.Second)
			return l.checkRunning()
		}
		last = strings.TrimSpace(out)
		if err := l.checkRunning(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("nodes not Ready after 120s: %q", last)
}
