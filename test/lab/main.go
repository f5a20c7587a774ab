// Command lab runs the Pharos lab: a real Kubernetes cluster made of network
// namespaces on this machine (see package cluster). It needs root on Linux.
//
//	go run ./test/lab up        build the lab (3 nodes), Pharos included
//	go run ./test/lab up --pharos=none   the lab without Pharos, to install its chart
//	go run ./test/lab status    show namespaces, components, nodes, Services
//	go run ./test/lab demo      up, then the my-nginx tutorial
//	go run ./test/lab down      remove everything the lab made
//	go run ./test/lab kubectl get svc -A
//	go run ./test/lab crash|recover|partition|heal|link-down|link-up NODE
//	go run ./test/lab restart-apiserver | stop|start COMPONENT
//
// The agent, echo, pod-exec and probe subcommands are the lab's own
// processes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/test/lab/agent"
	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/echo"
	"github.com/pharos-lb/pharos/test/lab/netem"
	"github.com/pharos-lb/pharos/test/lab/probe"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "agent":
		err = runAgent(ctx, args)
	case "echo":
		err = runEcho(ctx, args)
	case "pod-exec":
		// Replaces itself with a Pharos binary; returns only on failure.
		err = agent.ExecPod(args)
	case "probe":
		err = runProbe(ctx, args)
	case "load":
		err = runLoad(ctx, args)
	case "l2flood":
		err = runFlood(ctx, args)
	case "hold":
		err = runHold(ctx, args)
	case "netem":
		err = runNetem(ctx, args)
	case "supervise":
		// supervise PIDFILE COMMAND...: see cluster.Supervise.
		if len(args) < 2 {
			usage()
		}
		err = cluster.Supervise(ctx, args[0], args[1:])
	default:
		err = runLab(ctx, cmd, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: lab up|down|status|demo|kubectl ARGS|crash NODE|recover NODE|partition NODE|heal NODE|link-down NODE|link-up NODE|restart-apiserver|stop NAME|start NAME [flags]
flags: --prefix plab --nodes 3 --dir _output/lab --kube-bin-dir DIR --controller bin/controller --speaker bin/speaker --pharos processes|none --image-archive _output/image/pharos.tar`)
	os.Exit(2)
}

func runLab(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet("lab", flag.ExitOnError)
	prefix := fs.String("prefix", "plab", "name prefix of every namespace of the lab")
	nodes := fs.Int("nodes", 3, "number of Kubernetes nodes")
	dir := fs.String("dir", "_output/lab", "state directory: kubeconfigs, keys, logs")
	kubeBins := fs.String("kube-bin-dir", "", "directory with the Kubernetes binaries and etcd (default: hack/kube-bins/ensure.sh)")
	controller := fs.String("controller", "bin/controller", "Pharos controller binary (built if missing)")
	speaker := fs.String("speaker", "bin/speaker", "Pharos speaker binary (built if missing)")
	imageArchive := fs.String("image-archive", "", "OCI archive of Pharos's image (make image-archive): the node agents run Pharos's pods from its files, as its user, and only the pods that name it")
	pharos := fs.String("pharos", cluster.PharosProcesses, "how Pharos runs: "+cluster.PharosProcesses+" (its CRDs, RBAC, controller and speakers installed by the lab) or "+cluster.PharosNone+" (nothing installed, to install the Helm chart; pods of "+cluster.PharosImage+" then run the binaries)")
	// Flags may follow the positional arguments; kubectl's are its own.
	var positional []string
	if cmd == "kubectl" {
		positional, args = args, nil
	}
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	opts := cluster.Options{Prefix: *prefix, NodeCount: *nodes, Dir: *dir, KubeBinDir: *kubeBins, Pharos: *pharos, PharosImageArchive: *imageArchive, Out: os.Stdout}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	opts.RepoRoot = root
	// The host first: building Kubernetes may take minutes.
	if cmd == "up" || cmd == "demo" {
		if err := cluster.CheckHost(); err != nil {
			return err
		}
	}
	needBins := cmd == "up" || cmd == "demo" || cmd == "kubectl" || cmd == "status" || cmd == "start" || cmd == "restart-apiserver"
	if needBins && opts.KubeBinDir == "" {
		if opts.KubeBinDir, err = cluster.EnsureKubeBins(root, nil, os.Stderr); err != nil {
			return err
		}
	}
	if cmd == "up" || cmd == "demo" {
		if opts.LabBinary, err = installSelf(*dir); err != nil {
			return err
		}
		if opts.ControllerBinary, err = ensureBinary(*controller, "./controller"); err != nil {
			return err
		}
		if opts.SpeakerBinary, err = ensureBinary(*speaker, "./speaker"); err != nil {
			return err
		}
	}
	l, err := cluster.New(opts)
	if err != nil {
		return err
	}
	arg := func() string {
		if len(positional) == 0 {
			return ""
		}
		return positional[0]
	}
	switch cmd {
	case "up":
		return l.Up(ctx)
	case "demo":
		if l.Pharos == cluster.PharosNone {
			return errors.New("the demo needs Pharos installed: drop --pharos=" + cluster.PharosNone)
		}
		return demo(ctx, l)
	case "down":
		if err := l.Down(); err != nil {
			return err
		}
		fmt.Println("lab: down; nothing of it is left")
		return nil
	case "status":
		fmt.Print(l.Status(ctx))
		return nil
	case "kubectl":
		out, err := l.Kubectl(ctx, positional...)
		fmt.Print(out)
		if err != nil {
			return errors.New("kubectl failed")
		}
		return nil
	case "crash":
		return l.CrashNode(arg())
	case "recover":
		return l.RecoverNode(ctx, arg())
	case "partition":
		return l.Partition(arg())
	case "heal":
		return l.Heal(arg())
	case "link-down":
		return l.LinkDown(arg())
	case "link-up":
		return l.LinkUp(arg())
	case "restart-apiserver":
		return l.RestartAPIServer(ctx)
	case "stop":
		return l.Stop(arg(), syscall.SIGTERM)
	case "start":
		return l.Restart(arg())
	}
	usage()
	return nil
}

// installSelf copies this program next to the lab directory, so that the
// node agents it starts survive `go run` deleting its temporary binary.
func installSelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(filepath.Join(filepath.Dir(filepath.Clean(dir)), "lab-bin", "lab"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return "", err
	}
	in, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp := abs + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return abs, os.Rename(tmp, abs)
}

func ensureBinary(path, pkg string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err == nil {
		return abs, nil
	}
	fmt.Println("lab: building", pkg, "into", abs)
	cmd := exec.Command("go", "build", "-o", abs, pkg)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return abs, cmd.Run()
}

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	var o agent.Options
	var ips, cidrs, binaries, user string
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig")
	fs.StringVar(&o.NodeName, "node", "", "node name")
	fs.StringVar(&ips, "node-ips", "", "node addresses, comma-separated")
	fs.BoolVar(&o.IPv6First, "ipv6-first", false, "list the node's IPv6 InternalIP first")
	fs.StringVar(&cidrs, "pod-cidrs", "", "pod CIDRs, comma-separated")
	fs.StringVar(&o.Bridge, "bridge", "cbr0", "pod bridge")
	fs.StringVar(&o.PodNetnsPrefix, "pod-netns-prefix", "", "prefix of pod network namespaces")
	fs.StringVar(&o.LogDir, "log-dir", "", "directory for pod logs")
	fs.StringVar(&o.PharosImage, "pharos-image", "", "repository of Pharos's image, whose pods run the real binaries (empty: none)")
	fs.StringVar(&binaries, "pharos-binaries", "", "image path=binary here, comma-separated, e.g. /controller=bin/controller,/speaker=bin/speaker")
	fs.StringVar(&o.PharosRootfs, "pharos-rootfs", "", "the unpacked root filesystem of Pharos's image, whose files its pods run (instead of --pharos-binaries)")
	fs.StringVar(&o.PharosImageRef, "pharos-image-ref", "", "with --pharos-rootfs: the image's name (repository:tag); pods that name another fail")
	fs.StringVar(&user, "pharos-user", "65532:65532", "uid:gid of Pharos's image (its USER)")
	fs.StringVar(&o.APIServer, "apiserver", "", "the apiserver's URL, for Pharos pods")
	fs.StringVar(&o.APIServerCA, "apiserver-ca", "", "PEM file of the CA of the apiserver's certificate, for Pharos pods")
	fs.StringVar(&o.StateDir, "state-dir", "", "directory for Pharos pods' tokens and kubeconfigs (searchable by all users)")
	_ = fs.Parse(args)
	if binaries != "" {
		o.PharosBinaries = map[string]string{}
		for _, kv := range strings.Split(binaries, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return fmt.Errorf("--pharos-binaries: %q is not PATH=BINARY", kv)
			}
			o.PharosBinaries[k] = v
		}
	}
	if _, err := fmt.Sscanf(user, "%d:%d", &o.PharosUID, &o.PharosGID); err != nil {
		return fmt.Errorf("--pharos-user: %q is not uid:gid: %w", user, err)
	}
	for _, s := range strings.Split(ips, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--node-ips: %w", err)
		}
		o.InternalIPs = append(o.InternalIPs, a)
	}
	for _, s := range strings.Split(cidrs, ",") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--pod-cidrs: %w", err)
		}
		o.PodCIDRs = append(o.PodCIDRs, p)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.EchoCommand = []string{self, "echo"}
	o.LaunchCommand = []string{self, "pod-exec"}
	return agent.Run(ctx, o)
}

func runProbe(ctx context.Context, args []string) error { //nolint:unparam // every subcommand has this signature
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	url := fs.String("url", "", "URL to request")
	interval := fs.Duration("interval", 20*time.Millisecond, "time between new connections")
	timeout := fs.Duration("timeout", 200*time.Millisecond, "per-request timeout")
	_ = fs.Parse(args)
	probe.Run(ctx, *url, *interval, *timeout, os.Stdout)
	return nil
}

// runLoad prints "<ok> <failed> <seconds>" of a Load run.
func runLoad(ctx context.Context, args []string) error { //nolint:unparam // every subcommand has this signature
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "URL to request")
	concurrency := fs.Int("concurrency", 8, "parallel clients")
	duration := fs.Duration("duration", 5*time.Second, "how long")
	timeout := fs.Duration("timeout", time.Second, "per-request timeout")
	keepAlive := fs.Bool("keepalive", false, "one connection per client rather than one per request")
	_ = fs.Parse(args)
	r := probe.Load(ctx, *url, *concurrency, *duration, *timeout, *keepAlive)
	fmt.Printf("%d %d %.3f\n", r.OK, r.Failed, r.Elapsed.Seconds())
	return nil
}

// runHold prints "<kept> <conns>" of a Hold run.
func runHold(ctx context.Context, args []string) error { //nolint:unparam // every subcommand has this signature
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	url := fs.String("url", "", "URL to request")
	conns := fs.Int("conns", 50, "long-lived connections")
	interval := fs.Duration("interval", 100*time.Millisecond, "time between requests on each connection")
	duration := fs.Duration("duration", 20*time.Second, "how long")
	_ = fs.Parse(args)
	r := probe.Hold(ctx, *url, *conns, *interval, *duration)
	fmt.Printf("%d %d\n", r.Kept, r.Conns)
	return nil
}

func runEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	var o echo.Options
	var ports string
	fs.StringVar(&o.Pod, "pod", "", "pod name")
	fs.StringVar(&o.Node, "node", "", "node name")
	fs.StringVar(&ports, "ports", "80", "ports, comma-separated")
	_ = fs.Parse(args)
	for _, s := range strings.Split(ports, ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("--ports: %w", err)
		}
		o.Ports = append(o.Ports, p)
	}
	return echo.Serve(ctx, o)
}

// runNetem relays frames between two interfaces with netem's impairments
// (see package netem): the lab's StressNode splices it into a node's link.
func runNetem(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("netem", flag.ExitOnError)
	a := fs.String("a", "", "one interface")
	b := fs.String("b", "", "the other interface")
	loss := fs.Float64("loss", 0.05, "share of frames lost")
	delay := fs.Duration("delay", 20*time.Millisecond, "delay of each frame")
	jitter := fs.Duration("jitter", 20*time.Millisecond, "uniform jitter around the delay")
	seed := fs.Int64("seed", 1, "random seed")
	_ = fs.Parse(args)
	st, err := netem.Relay(ctx, *a, *b, netem.Impairment{Loss: *loss, Delay: *delay, Jitter: *jitter}, *seed, func() { fmt.Println("ready") })
	fmt.Printf("netem %s<->%s: %d frames relayed, %d dropped\n", *a, *b, st.Relayed, st.Dropped)
	return err
}
