// Package agent is the lab's stand-in for the kubelet. One agent runs per lab
// node, inside the node's network namespace. It registers the Node and keeps
// it Ready, and it "runs" the pods bound to the node: each pod gets its own
// network namespace wired to the node's pod bridge, and an echo server
// (package echo) in place of its containers. That is all the real control
// plane (scheduler, endpoint controllers, kube-proxy, pharos) needs to treat
// the lab as a genuine cluster. Pods of Pharos's own image are the
// exception: they run the real Pharos binary as a process, under their
// ServiceAccount's identity and their securityContext (user, capabilities,
// read-only root filesystem, no_new_privs, seccomp RuntimeDefault), with
// their emptyDir volumes and their readiness and liveness probes, so that
// a Helm install in the lab tests the chart itself (procpods.go,
// podexec.go); with PharosRootfs, the binary is the image's own file.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configures one node agent.
type Options struct {
	// Kubeconfig is the path of an admin-level kubeconfig.
	Kubeconfig string
	// NodeName is the Node to register, e.g. "plab-n1".
	NodeName string
	// InternalIPs are the node's LAN addresses, IPv4 first then IPv6
	// (IPv6 first with IPv6First).
	InternalIPs []netip.Addr
	// IPv6First lists the IPv6 InternalIP first, as an IPv6-first
	// dual-stack node does.
	IPv6First bool
	// PodCIDRs are the node's pod ranges, e.g. 198.18.33.0/24 and
	// 2001:db8:42:1::/64; at most one per address family.
	PodCIDRs []netip.Prefix
	// Bridge is a Linux bridge that already exists in the agent's network
	// namespace and holds the first host of each pod CIDR; pod veths are
	// attached to it and pods route through those addresses.
	Bridge string
	// PodNetnsPrefix names pod network namespaces: PodNetnsPrefix+<n>.
	PodNetnsPrefix string
	// EchoCommand is the argv prefix that starts the echo server; the agent
	// appends --pod, --node and --ports and runs it in the pod netns.
	EchoCommand []string
	// LogDir receives each pod's echo-server log as
	// <pod-namespace>_<pod-name>.log; empty discards the output.
	LogDir string

	// PharosImage is the repository of Pharos's image, e.g.
	// "ghcr.io/pharos-lb/pharos". A pod whose container uses it (any tag
	// or digest) runs the real binary that PharosBinaries names for its
	// command[0], as a process, instead of an echo server; see
	// procpods.go. Empty: every pod gets an echo server.
	PharosImage string
	// PharosBinaries maps an image path (command[0], e.g. "/controller")
	// to the binary on this machine that stands in for it. Not used with
	// PharosRootfs.
	PharosBinaries map[string]string
	// PharosRootfs is the root filesystem of Pharos's image, unpacked
	// from its OCI archive (make image-archive): a pod's command[0] is
	// resolved inside it, so the pod runs the image's own file, and a
	// path the image lacks fails the pod. The process still sees this
	// machine's filesystem (the agent does not chroot): the image proves
	// its files, user and paths, not that they need nothing else.
	PharosRootfs string
	// PharosImageRef, with PharosRootfs, is the one image of
	// PharosImage's repository this node has, e.g.
	// "ghcr.io/pharos-lb/pharos:dev": a pod that names another tag fails,
	// as it would on an air-gapped node where only that archive was
	// imported. Empty: any tag.
	PharosImageRef string
	// PharosUID and PharosGID are the user and group a Pharos container
	// runs as when its securityContext sets none: the image's USER
	// (65532:65532).
	PharosUID, PharosGID int64
	// LaunchCommand is the argv prefix of the launcher that drops to the
	// container's user and execs a Pharos binary: the lab command's
	// pod-exec subcommand (ExecPod). The agent appends its flags.
	LaunchCommand []string
	// APIServer is the apiserver's URL as pods reach it, and APIServerCA
	// the PEM file of the CA that signed its serving certificate; both go
	// into each Pharos pod's kubeconfig.
	APIServer, APIServerCA string
	// StateDir holds each Pharos pod's token and kubeconfig, in
	// <StateDir>/<namespace>_<name>/. Pods running as another user than
	// root read them by path, so StateDir and its parents must be
	// searchable by everyone: somewhere under /run, not a home directory.
	StateDir string
}

// Run registers the node, keeps it Ready and runs its pods until ctx is
// done. On return every echo server it started has been stopped, while pod
// network namespaces are left in place (Cleanup removes them). Run returns
// an error only for bad options or a client that cannot be built; trouble
// with the apiserver or with a pod is logged and retried, never fatal.
func Run(ctx context.Context, opts Options) error {
	if err := opts.normalize(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", opts.NodeName)

	cfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: load kubeconfig: %w", err)
	}
	// client-go's default of 5 QPS would make the agent itself the
	// bottleneck when a test scales a Deployment up to dozens of pods.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "pharos-lab-agent/" + opts.NodeName
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("agent: build client: %w", err)
	}
	if opts.LogDir != "" {
		if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
			return fmt.Errorf("agent: create log dir: %w", err)
		}
	}
	if opts.StateDir != "" {
		if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
			return fmt.Errorf("agent: create state dir: %w", err)
		}
	}

	log.Info("agent starting", "ips", opts.InternalIPs, "podCIDRs", opts.PodCIDRs, "bridge", opts.Bridge)
	n := &nodeAgent{cs: cs, opts: opts, log: log}
	// The node goes first so that Ready is posted as early as possible;
	// registration retries until the apiserver answers or ctx ends.
	if err := n.register(ctx); err != nil {
		log.Info("agent stopped before the node was registered", "err", err)
		return nil
	}

	var wg sync.WaitGroup
	wg.Go(func() { n.heartbeat(ctx) })
	pm := newPodManager(cs, opts, log)
	pm.run(ctx)
	wg.Wait()
	log.Info("agent stopped")
	return nil
}

// normalize checks the options and puts both address lists in IPv4-first
// order, which is the order pod and host IPs are reported in.
func (o *Options) normalize() error {
	// Work on copies: the caller's slices are not ours to reorder.
	o.InternalIPs = slices.Clone(o.InternalIPs)
	o.PodCIDRs = slices.Clone(o.PodCIDRs)
	o.EchoCommand = slices.Clone(o.EchoCommand)
	o.LaunchCommand = slices.Clone(o.LaunchCommand)
	o.PharosBinaries = maps.Clone(o.PharosBinaries)
	var errs []error
	if o.Kubeconfig == "" {
		errs = append(errs, errors.New("option Kubeconfig is required"))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if len(o.InternalIPs) == 0 {
		errs = append(errs, errors.New("at least one InternalIP is required"))
	}
	for _, a := range o.InternalIPs {
		if !a.IsValid() {
			errs = append(errs, errors.New("invalid InternalIP"))
		}
	}
	if len(o.PodCIDRs) == 0 || len(o.PodCIDRs) > 2 {
		errs = append(errs, fmt.Errorf("need one or two PodCIDRs, got %d", len(o.PodCIDRs)))
	}
	for i, p := range o.PodCIDRs {
		if !p.IsValid() {
			errs = append(errs, errors.New("invalid PodCIDR"))
			continue
		}
		o.PodCIDRs[i] = p.Masked()
	}
	if len(o.PodCIDRs) == 2 && o.PodCIDRs[0].Addr().Is4() == o.PodCIDRs[1].Addr().Is4() {
		errs = append(errs, errors.New("the two PodCIDRs must be of different families"))
	}
	if o.Bridge == "" {
		errs = append(errs, errors.New("option Bridge is required"))
	}
	if o.PodNetnsPrefix == "" {
		errs = append(errs, errors.New("PodNetnsPrefix is required"))
	}
	if len(o.EchoCommand) == 0 {
		errs = append(errs, errors.New("EchoCommand is required"))
	}
	if o.PharosImage != "" {
		if len(o.PharosBinaries) == 0 && o.PharosRootfs == "" {
			errs = append(errs, errors.New("PharosImage needs PharosBinaries or PharosRootfs"))
		}
		if len(o.LaunchCommand) == 0 {
			errs = append(errs, errors.New("PharosImage needs LaunchCommand"))
		}
		if o.APIServer == "" || o.APIServerCA == "" || o.StateDir == "" {
			errs = append(errs, errors.New("PharosImage needs APIServer, APIServerCA and StateDir"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: invalid options: %w", err)
	}
	v4First := func(a, b bool) int {
		switch {
		case a == b:
			return 0
		case a:
			return -1
		}
		return 1
	}
	slices.SortStableFunc(o.InternalIPs, func(a, b netip.Addr) int {
		if o.IPv6First {
			return v4First(a.Is6(), b.Is6())
		}
		return v4First(a.Is4(), b.Is4())
	})
	slices.SortStableFunc(o.PodCIDRs, func(a, b netip.Prefix) int { return v4First(a.Addr().Is4(), b.Addr().Is4()) })
	return nil
}
