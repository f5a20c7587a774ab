// Command speaker runs on every node (host network) and announces the
// LoadBalancer addresses that its node wins: by layer 2, answering ARP and
// NDP. Speakers form a cluster with memberlist to detect failed nodes in
// under a second and to agree on each address's current owner.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/vishvananda/netlink"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/kubecheck"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

func main() {
	def := speakerlist.DefaultTimers()
	var (
		nodeName     = flag.String("node-name", os.Getenv("NODE_NAME"), "this node's name (env NODE_NAME)")
		bindAddr     = flag.String("bind-addr", "", "address for memberlist (default: the node's first InternalIP)")
		port         = flag.Int("memberlist-port", 7946, "memberlist TCP and UDP port")
		secret       = flag.String("memberlist-secret", envOr("POD_NAMESPACE", "pharos-system")+"/pharos-memberlist", "namespace/name of the Secret whose key 'key' (16, 24 or 32 bytes) encrypts gossip")
		probe        = flag.Duration("probe-interval", def.ProbeInterval, "memberlist probe interval")
		probeTimeout = flag.Duration("probe-timeout", def.ProbeTimeout, "memberlist probe timeout")
		suspicion    = flag.Int("suspicion-mult", def.SuspicionMult, "memberlist suspicion multiplier (times the probe interval)")
		gossip       = flag.Duration("gossip-interval", def.GossipInterval, "memberlist gossip interval")
		garpCount    = flag.Int("gratuitous-count", 3, "gratuitous ARP / unsolicited NA packets sent on takeover")
		garpInterval = flag.Duration("gratuitous-interval", 200*time.Millisecond, "time between them")
		drainTimeout = flag.Duration("drain-timeout", 3*time.Second, "on SIGTERM, how long to wait for other nodes to take over before stopping")
		metricsAddr  = flag.String("metrics-bind-address", ":7474", "Prometheus metrics address; 0 disables it")
		probeAddr    = flag.String("health-probe-bind-address", ":7475", "address of /healthz and /readyz (ready once the speaker has joined the cluster and announces its share); 0 disables it")
		splitBrain   = flag.Duration("split-brain-probe-interval", 5*time.Second, "how often the announcing node asks the LAN whether another MAC answers for its addresses")
	)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	splitBrainInterval = *splitBrain
	// The speaker's heap is mostly the informers' objects, which live long;
	// collecting at 50% growth keeps its peak memory near the live set.
	debug.SetGCPercent(50)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", *nodeName)
	if err := run(logger, *nodeName, *bindAddr, *port, *secret, speakerlist.Timers{
		ProbeInterval: *probe, ProbeTimeout: *probeTimeout, SuspicionMult: *suspicion,
		SuspicionMaxTimeoutMult: def.SuspicionMaxTimeoutMult, GossipInterval: *gossip, PushPullInterval: def.PushPullInterval,
	}, layer2.Options{GratuitousCount: *garpCount, GratuitousInterval: *garpInterval, Logger: logger}, *drainTimeout, *metricsAddr, *probeAddr); err != nil {
		fmt.Fprintln(os.Stderr, "pharos-speaker:", err)
		os.Exit(1)
	}
}

var splitBrainInterval = 5 * time.Second

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(logger *slog.Logger, nodeName, bindAddr string, port int, secretRef string, timers speakerlist.Timers, annOpts layer2.Options, drainTimeout time.Duration, metricsAddr, probeAddr string) error {
	if nodeName == "" {
		return fmt.Errorf("--node-name (or NODE_NAME from the downward API) is required")
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration: %w", err)
	}
	cfg.UserAgent = "pharos-speaker/" + nodeName
	if err := preflight(cfg, secretRef); err != nil {
		kubecheck.WriteTerminationMessage(err)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	key, err := readKey(ctx, logger, direct, secretRef)
	if err != nil {
		return err
	}
	if bindAddr == "" {
		if bindAddr, err = nodeAddress(ctx, direct, nodeName); err != nil {
			return err
		}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return err
	}
	changes := make(chan event.GenericEvent, 1)
	kick := func() {
		select {
		case changes <- event.GenericEvent{Object: &corev1.Service{}}:
		default: // a reconcile is already due
		}
	}
	members, err := speakerlist.New(speakerlist.Options{NodeName: nodeName, BindAddr: bindAddr, Port: port, SecretKey: key, Timers: timers, Logger: logger, OnChange: kick})
	if err != nil {
		return err
	}
	sp := &Speaker{node: nodeName, client: mgr.GetClient(), members: members, log: logger, annOpts: annOpts,
		announcers: map[string]*layer2.Announcer{}, owned: map[netip.Addr]ownership{}, runCtx: ctx,
		conflicts: map[netip.Addr]string{}, kick: kick}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "all"}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("speaker").
		Watches(&corev1.Service{}, all).
		Watches(&discoveryv1.EndpointSlice{}, all).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeChanged)).
		Watches(&v1beta1.IPAddressPool{}, all).
		Watches(&v1beta1.L2Advertisement{}, all).
		WatchesRawSource(source.Channel(changes, all)).
		Complete(sp)
	if err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("announcing", sp.ReadyCheck); err != nil {
		return err
	}
	go publishInterfaces(ctx, members)
	go sp.probeOwned(ctx, mgr.GetEventRecorder("pharos-speaker"), splitBrainInterval)
	go joinPeers(ctx, logger, mgr.GetClient(), members, nodeName, &sp.joined, kick)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		logger.Info("stopping: handing addresses over first")
		sp.Drain(drainTimeout)
		cancel()
	}()
	logger.Info("speaker starting", "bind", bindAddr, "port", port)
	return mgr.Start(ctx)
}

// readKey reads the memberlist key from its Secret, waiting while the
// Secret or its key is missing or invalid: the controller generates the key
// into the Secret the chart creates empty, and a speaker may start first.
// It says once per distinct problem what it waits for.
func readKey(ctx context.Context, logger *slog.Logger, c client.Client, ref string) ([]byte, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, fmt.Errorf("--memberlist-secret %q: want namespace/name", ref)
	}
	last := ""
	for {
		var s corev1.Secret
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
		var why string
		switch {
		case apierrors.IsForbidden(err):
			return nil, fmt.Errorf("reading the memberlist key from Secret %s: %w", ref, err)
		case err != nil:
			why = err.Error()
		default:
			key, perr := speakerlist.ParseKey(s.Data[speakerlist.KeySecretField])
			if perr == nil {
				return key, nil
			}
			why = perr.Error()
		}
		if why != last {
			logger.Info("waiting for the memberlist key: the controller generates it (or put 16, 24 or 32 random bytes, raw or base64, under 'key')", "secret", ref, "now", why)
			last = why
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func nodeAddress(ctx context.Context, c client.Client, name string) (string, error) {
	var n corev1.Node
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		return "", fmt.Errorf("reading Node %s for its address: %w (or pass --bind-addr)", name, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address, nil
		}
	}
	return "", fmt.Errorf("Node %s has no InternalIP; pass --bind-addr", name)
}

// publishInterfaces keeps the node's metadata in step with its links, so
// that a node whose interface goes down stops being a candidate. Link and
// address changes arrive from netlink as they happen; a slow poll covers a
// lost notification.
func publishInterfaces(ctx context.Context, members *speakerlist.List) {
	links := make(chan netlink.LinkUpdate, 16)
	addrs := make(chan netlink.AddrUpdate, 16)
	_ = netlink.LinkSubscribe(links, ctx.Done())
	_ = netlink.AddrSubscribe(addrs, ctx.Done())
	last := ""
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		up := localInterfaces()
		if s := strings.Join(up, ","); s != last {
			if members.SetMeta(speakerlist.Meta{InterfacesUp: up}) == nil {
				last = s
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-links:
		case <-addrs:
		case <-t.C:
		}
	}
}

// joinPeers joins the speakers of the other nodes, found by the nodes'
// InternalIPs of the memberlist address's family, and keeps retrying for
// nodes that are not members, so that a partition heals by itself.
func joinPeers(ctx context.Context, logger *slog.Logger, c client.Client, members *speakerlist.List, self string, joined *atomic.Bool, kick func()) {
	for {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err == nil {
			current := members.Members()
			var peers []string
			for _, n := range nodes.Items {
				if _, in := current[n.Name]; in || n.Name == self {
					continue
				}
				for _, a := range n.Status.Addresses {
					if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() {
						peers = append(peers, a.Address)
					}
				}
			}
			if len(peers) > 0 {
				if n, err := members.Join(peers); err != nil && n == 0 {
					logger.Debug("joining peers", "peers", peers, "err", err)
				}
			}
			// One attempt at every known peer is enough: a join pulls the
			// cluster's claims; a node alone (or cut off) then announces
			// what it wins.
			if !joined.Swap(true) {
				logger.Info("joined the speakers' cluster", "members", len(members.Members()))
				kick()
			}
		}
		wait := 2 * time.Second
		if !joined.Load() {
			wait = 100 * time.Millisecond // the cache is still syncing
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// nodeChanged passes Node updates that can change an election: labels,
// cordon, readiness and addresses. Every kubelet heartbeat rewrites the
// Node's status; reacting to those would recompute every election every
// few seconds for nothing.
var nodeChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Node)
	n, ok2 := e.ObjectNew.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable ||
		nodeReady(o) != nodeReady(n) ||
		!equality.Semantic.DeepEqual(o.Status.Addresses, n.Status.Addresses)
}}
