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
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/bgpannounce"
	"github.com/pharos-lb/pharos/internal/forwarding"
	"github.com/pharos-lb/pharos/internal/heartbeat"
	"github.com/pharos-lb/pharos/internal/kubecheck"
	"github.com/pharos-lb/pharos/internal/l2announce"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/liveness"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// options are the speaker's settings, from its flags.
type options struct {
	nodeName           string
	bindAddr           string
	port               int
	secretRef          string
	timers             speakerlist.Timers
	announcer          layer2.Options
	drainTimeout       time.Duration
	metricsAddr        string
	probeAddr          string
	pprofAddr          string
	forwarding         string
	splitBrainInterval time.Duration
	logLevel           slog.Level
	// failover is the fast failure detection (internal/heartbeat).
	failover failoverOptions
}

// failoverOptions tune the fast failure detection between each announcing
// node and its successor.
type failoverOptions struct {
	detection time.Duration
	interval  time.Duration
	port      int
}

// validate checks the flags before the speaker connects to anything.
func (f failoverOptions) validate() error {
	switch {
	case f.detection < 0:
		return fmt.Errorf("--failover-detection %s: want a positive duration, or 0 to leave failure detection to memberlist", f.detection)
	case f.detection == 0:
		return nil
	case f.port < 1 || f.port > 65535:
		return fmt.Errorf("--heartbeat-port %d: want a port from 1 to 65535", f.port)
	}
	if err := (heartbeat.Options{Interval: f.interval, Detection: liveness.Defaults(f.detection, f.interval)}).Validate(); err != nil {
		return fmt.Errorf("--failover-detection %s, --heartbeat-interval %s: %w", f.detection, f.interval, err)
	}
	return nil
}

func main() {
	def := speakerlist.DefaultTimers()
	o := options{timers: def}
	flag.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (env NODE_NAME)")
	flag.StringVar(&o.bindAddr, "bind-addr", "", "address for memberlist (default: the node's first InternalIP); peers are joined at their InternalIPs of the same family")
	flag.IntVar(&o.port, "memberlist-port", 7946, "memberlist TCP and UDP port")
	flag.StringVar(&o.secretRef, "memberlist-secret", envOr("POD_NAMESPACE", "pharos-system")+"/pharos-memberlist", "namespace/name of the Secret whose key 'key' (16, 24 or 32 bytes) encrypts gossip")
	flag.DurationVar(&o.timers.ProbeInterval, "probe-interval", def.ProbeInterval, "memberlist probe interval")
	flag.DurationVar(&o.timers.ProbeTimeout, "probe-timeout", def.ProbeTimeout, "memberlist probe timeout")
	flag.IntVar(&o.timers.SuspicionMult, "suspicion-mult", def.SuspicionMult, "memberlist suspicion multiplier (times the probe interval)")
	flag.DurationVar(&o.timers.GossipInterval, "gossip-interval", def.GossipInterval, "memberlist gossip interval")
	flag.DurationVar(&o.failover.detection, "failover-detection", 200*time.Millisecond, "how long the node that would take an address over waits, once the announcing node's heartbeats stop and its kernel does not answer ARP/NDP on the LAN either, before it takes over; 0 leaves failure detection to memberlist alone (2-4 s). Lower is faster and more exposed to a congested LAN; a slow or paused speaker never triggers it while its kernel answers")
	flag.DurationVar(&o.failover.interval, "heartbeat-interval", 50*time.Millisecond, "time between the heartbeats an announcing node sends its successor (at most a third of --failover-detection); the detection time, counted from the last heartbeat, bounds how long a crash goes unnoticed, and a shorter interval costs more CPU")
	flag.IntVar(&o.failover.port, "heartbeat-port", 7947, "UDP port of the fast heartbeats between speakers")
	flag.IntVar(&o.announcer.GratuitousCount, "gratuitous-count", 3, "gratuitous ARP / unsolicited NA packets sent on takeover")
	flag.DurationVar(&o.announcer.GratuitousInterval, "gratuitous-interval", 200*time.Millisecond, "time between them")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Second, "on SIGTERM, how long to wait for other nodes to take over before stopping")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":7474", "Prometheus metrics address; 0 disables it")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":7475", "address of /healthz and /readyz (ready once the speaker has joined the cluster and announces its share); 0 disables it")
	flag.StringVar(&o.forwarding, "forwarding", v1beta1.ForwardingKubeProxy, "who carries a Service's traffic from the node that receives it to its endpoints, unless the Service's pharos.io/forwarding annotation says otherwise: kube-proxy; nodeport (this speaker's nftables table hands the address to kube-proxy's NodePort on this node); or direct (the table DNATs it to the ready endpoints, for clusters without kube-proxy). nodeport and direct need CAP_NET_ADMIN")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof/ profiles (heap, CPU) for diagnosis; empty (the default) disables it")
	flag.DurationVar(&o.splitBrainInterval, "split-brain-probe-interval", 5*time.Second, "how often the announcing node asks the LAN whether another MAC answers for its addresses")
	flag.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	// The controller's logging flag, accepted so that one chart value (and
	// earlier releases' arguments) set both components.
	flag.Func("zap-log-level", "alias of --log-level: debug, info, error, or an integer (above 0: debug)", func(v string) error {
		l, err := zapLevel(v)
		o.logLevel = l
		return err
	})
	flag.Parse()
	// The speaker's heap is mostly the informers' objects, which live long;
	// collecting at 50% growth keeps its peak memory near the live set.
	debug.SetGCPercent(50)
	// One logging stack: controller-runtime and client-go log through the
	// same slog handler as the speaker, as JSON on stderr.
	handler := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel})
	logger := slog.New(handler).With("node", o.nodeName)
	ctrl.SetLogger(logr.FromSlogHandler(logger.Handler()))
	klog.SetSlogLogger(logger)
	o.announcer.Logger = logger
	if err := run(logger, o); err != nil {
		fmt.Fprintln(os.Stderr, "pharos-speaker:", err)
		os.Exit(1)
	}
}

// zapLevel reads a controller-runtime --zap-log-level value: a level name,
// or a verbosity (0 is info, more is debug).
func zapLevel(v string) (slog.Level, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n > 0 {
			return slog.LevelDebug, nil
		}
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return slog.LevelInfo, fmt.Errorf("%q: want debug, info, warn, error or a number", v)
	}
	return l, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(logger *slog.Logger, o options) error {
	if o.nodeName == "" {
		return fmt.Errorf("--node-name (or NODE_NAME from the downward API) is required")
	}
	if err := o.failover.validate(); err != nil {
		return err
	}
	if !slices.Contains(v1beta1.ForwardingModes, o.forwarding) {
		return fmt.Errorf("--forwarding %q: want one of %s", o.forwarding, strings.Join(v1beta1.ForwardingModes, ", "))
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration: %w", err)
	}
	cfg.UserAgent = "pharos-speaker/" + o.nodeName
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// An unreachable apiserver (a node that boots before the control
	// plane, or during an outage) is waited for here, not exited on: a
	// kubelet's back-off would add minutes once it returns.
	if err := kubecheck.Retry(ctx, kubecheck.RetryOptions{
		Waiting: func(err error) { logger.Info("waiting for the apiserver", "error", err.Error()) },
		Recovered: func(d time.Duration) {
			logger.Info("the apiserver answers", "waited", d.Round(time.Millisecond).String())
		},
	}, func(context.Context) error { return preflight(cfg, o.secretRef) }); err != nil {
		kubecheck.WriteTerminationMessage(err)
		return err
	}

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	key, err := readKey(ctx, logger, direct, o.secretRef)
	if err != nil {
		return err
	}
	internalIPs, err := nodeAddresses(ctx, logger, direct, o.nodeName)
	if err != nil {
		return err
	}
	if o.bindAddr == "" {
		o.bindAddr = internalIPs[0]
	}
	bind, err := netip.ParseAddr(o.bindAddr)
	if err != nil {
		return fmt.Errorf("--bind-addr %q: not an IP address", o.bindAddr)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		PprofBindAddress:       o.pprofAddr,
		Cache:                  cache.Options{DefaultTransform: trimForCache},
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
	members, err := speakerlist.New(speakerlist.Options{NodeName: o.nodeName, BindAddr: o.bindAddr, Port: o.port, SecretKey: key, Timers: o.timers, Logger: logger, OnChange: kick})
	if err != nil {
		return err
	}
	var hb *heartbeat.Heartbeat
	if o.failover.detection > 0 {
		hb, err = heartbeat.New(heartbeat.Options{Node: o.nodeName, Key: key, BindAddr: bind, Port: o.failover.port,
			Interval: o.failover.interval, Detection: liveness.Defaults(o.failover.detection, o.failover.interval), OnChange: kick, Logger: logger})
		if err != nil {
			return err
		}
		go hb.Run(ctx)
		metrics.Registry.MustRegister(hb.Collector())
	}
	sp := &Speaker{node: o.nodeName, client: mgr.GetClient(), cache: mgr.GetCache(), members: members, heartbeat: hb, log: logger, kick: kick,
		statusJobs: make(chan statusJob, 1)}
	l2 := l2announce.New(l2announce.Options{Node: o.nodeName, Announcer: o.announcer, Claims: members, OwnerLeft: sp.ownerLeft, Logger: logger})
	defer func() { _ = l2.Close() }()
	metrics.Registry.MustRegister(l2.Collector(), members.Collector())
	sp.l2 = l2
	var addrs []netip.Addr
	for _, a := range internalIPs {
		if ip, err := netip.ParseAddr(a); err == nil {
			addrs = append(addrs, ip)
		}
	}
	sp.bgp = bgpannounce.New(bgpannounce.Options{Node: o.nodeName, NodeLabels: sp.NodeLabels, Addresses: addrs,
		Logger: logger, OnChange: kick, Password: secretPassword(direct)})
	defer func() { _ = sp.bgp.Close() }()
	metrics.Registry.MustRegister(sp.bgp.Collector(), sp.announcedAddresses())
	fw := forwarding.New(forwarding.Options{Node: o.nodeName, Default: o.forwarding, NodeAddrs: addrs, Logger: logger})
	defer func() { _ = fw.Close() }()
	metrics.Registry.MustRegister(fw.Collector())
	sp.announcers = []speaker.Announcer{l2, sp.bgp, fw}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "all"}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("speaker").
		Watches(&corev1.Service{}, all).
		Watches(&discoveryv1.EndpointSlice{}, all).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeChanged)).
		Watches(&v1beta1.IPAddressPool{}, all).
		Watches(&v1beta1.L2Advertisement{}, all).
		Watches(&v1beta1.BGPPeer{}, all).
		Watches(&v1beta1.BGPAdvertisement{}, all).
		Watches(&v1beta1.Community{}, all).
		Watches(&v1beta1.BFDProfile{}, all).
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
	meta := &metaPublisher{node: o.nodeName, members: members, log: logger, returned: func(names []string) {
		// Claims made while this node's memberlist link was down never
		// reached it: until it has them (a push-pull now, and at most one
		// cutOffSettle), it takes no address another MAC answers for,
		// as a node back from a partition does. Other interfaces (a pod
		// bridge that loses its last port, say) carry no claims: their
		// flaps change nothing (chaos: several nodes holding at once
		// after pod churn raced each other for addresses).
		if !slices.ContainsFunc(names, func(n string) bool { return interfaceHas(n, bind) }) {
			return
		}
		sp.cut.hold(cutOffSettle)
		go func() {
			n, err := members.Resync()
			logger.Info("an interface is up again: holding back takeovers until the others' claims are in", "interfaces", names, "resynced", n, "err", err)
			kick()
		}()
	}}
	go watchLinks(ctx, logger, meta, kick)
	go sp.probeOwned(ctx, mgr.GetEventRecorder("pharos-speaker"), o.splitBrainInterval)
	go sp.runStatusWriter(ctx)
	go sp.writeBGPStatus(ctx, direct, mgr.GetEventRecorder("pharos-speaker"), 2*time.Second)
	go joinPeers(ctx, logger, mgr.GetClient(), members, o.nodeName, bind, &sp.joined, kick)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		logger.Info("stopping: handing addresses over first")
		meta.draining.Store(true)
		meta.publish()
		sp.Drain(o.drainTimeout)
		cancel()
	}()
	logger.Info("speaker starting", "bind", o.bindAddr, "port", o.port)
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

// nodeAddresses returns the Node's InternalIPs: the first is the address
// memberlist binds to, and they are the next hops of its BGP routes. It waits while the Node is missing or has no InternalIP yet (a
// node agent registers its Node and then posts its addresses), saying once
// per distinct problem what it waits for; it fails at once when it may not
// read Nodes.
func nodeAddresses(ctx context.Context, logger *slog.Logger, c client.Client, name string) ([]string, error) {
	last := ""
	for {
		var n corev1.Node
		err := c.Get(ctx, types.NamespacedName{Name: name}, &n)
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("reading Node %s for its addresses: %w", name, err)
		}
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			var ips []string
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					ips = append(ips, a.Address)
				}
			}
			if len(ips) > 0 {
				return ips, nil
			}
			why = "the Node has no InternalIP yet"
		}
		if why != last {
			logger.Info("waiting for this node's InternalIP to bind memberlist to (or pass --bind-addr)", "node", name, "now", why)
			last = why
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// linkEvents counts netlink subscriptions that failed: the speaker then
// notices link changes only by polling, within linkPollSlow.
var linkSubscribeFailures = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "pharos_speaker_netlink_subscribe_failures_total",
	Help: "Netlink link or address subscriptions that failed; link changes are then noticed by polling only.",
})

// metaTrimmed counts metadata publications that had to drop interfaces to
// fit memberlist's 512-byte node metadata.
var metaTrimmed = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "pharos_speaker_metadata_trimmed_total",
	Help: "Node metadata publications that dropped interfaces to fit memberlist's limit (512 bytes).",
})

func init() { metrics.Registry.MustRegister(linkSubscribeFailures, metaTrimmed) }

const (
	linkPollFast = time.Second      // without netlink notifications
	linkPollSlow = 10 * time.Second // with them: only a lost notification
)

// watchLinks keeps the node's metadata in step with its links, so that a
// node whose interface goes down stops being a candidate, and kicks a
// reconcile on every link or address change so that the layer-2
// announcer reopens a replaced interface at once. Changes arrive from
// netlink as they happen; a poll covers a lost notification, and covers
// everything (every second) if netlink subscriptions fail.
func watchLinks(ctx context.Context, logger *slog.Logger, meta *metaPublisher, kick func()) {
	links := make(chan netlink.LinkUpdate, 16)
	addrs := make(chan netlink.AddrUpdate, 16)
	poll := linkPollSlow
	for _, err := range []error{netlink.LinkSubscribe(links, ctx.Done()), netlink.AddrSubscribe(addrs, ctx.Done())} {
		if err != nil {
			linkSubscribeFailures.Inc()
			logger.Warn("netlink subscription failed: link changes are noticed by polling every second", "err", err)
			poll = linkPollFast
		}
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if meta.publish() {
			kick()
		}
		select {
		case <-ctx.Done():
			return
		case <-links:
			kick()
		case <-addrs:
			kick()
		case <-t.C:
		}
	}
}

// metaPublisher publishes the node's interfaces in its memberlist
// metadata, trimmed to what fits.
type metaPublisher struct {
	node     string
	members  *speakerlist.List
	log      *slog.Logger
	draining atomic.Bool
	// returned is called when an interface that was up, went down, comes
	// up again (not a new one: pods' veths come and go all the time).
	returned func(names []string)

	mu      sync.Mutex
	last    string
	trimmed bool // a trim was logged; logged again only after it fits
	// seen are the interfaces ever published up; up those up now.
	seen, up map[string]bool
}

// back returns the interfaces of entries that are up now, were up once,
// and were not up at the last call; it records entries as the last call.
func (p *metaPublisher) back(entries []string) []string {
	now := map[string]bool{}
	for _, e := range entries {
		name, _, _ := strings.Cut(e, "=")
		now[name] = true
	}
	var out []string
	for name := range now {
		if p.seen[name] && !p.up[name] {
			out = append(out, name)
		}
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	for name := range now {
		p.seen[name] = true
	}
	p.up = now
	slices.Sort(out)
	return out
}

// publish sends the metadata if it changed, and reports whether it did.
func (p *metaPublisher) publish() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	up := localInterfaces()
	if back := p.back(up); len(back) > 0 && p.returned != nil {
		p.returned(back)
	}
	m := speakerlist.Meta{InterfacesUp: up, Draining: p.draining.Load()}
	kept, dropped := fitMeta(m)
	key := strings.Join(kept.InterfacesUp, ",") + fmt.Sprint(kept.Draining)
	if key == p.last {
		return false
	}
	if len(dropped) > 0 {
		metaTrimmed.Inc()
		if !p.trimmed {
			p.log.Warn("node metadata is over memberlist's 512-byte limit: these interfaces are not published, so this node is not a candidate on them; name the announcing interfaces in the L2Advertisements' spec.interfaces or remove addresses",
				"node", p.node, "dropped", dropped)
			p.trimmed = true
		}
	} else {
		p.trimmed = false
	}
	if err := p.members.SetMeta(kept); err != nil {
		p.log.Warn("publishing node metadata", "node", p.node, "err", err)
		return false
	}
	p.last = key
	return true
}

// interfaceHas reports whether the named interface holds addr.
func interfaceHas(name string, addr netip.Addr) bool {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return false
	}
	as, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.Unmap() {
				return true
			}
		}
	}
	return false
}

// fitMeta drops interface entries from m until it fits memberlist's
// metadata limit, and returns what it dropped. It drops the entries of
// container and virtual interfaces (veth, cali, cni, flannel, docker,
// lxc, tunl, vxlan, kube-ipvs) first, which never carry a LoadBalancer
// address, then from the end.
func fitMeta(m speakerlist.Meta) (speakerlist.Meta, []string) {
	if speakerlist.MetaSize(m) <= memberlist.MetaMaxSize {
		return m, nil
	}
	virtual := func(e string) bool {
		for _, p := range []string{"veth", "cali", "cni", "flannel", "docker", "lxc", "tunl", "vxlan", "kube-ipvs", "cilium", "weave", "genev"} {
			if strings.HasPrefix(e, p) {
				return true
			}
		}
		return false
	}
	var kept, dropped []string
	for _, e := range m.InterfacesUp {
		if virtual(e) {
			dropped = append(dropped, e)
		} else {
			kept = append(kept, e)
		}
	}
	m.InterfacesUp = kept
	for speakerlist.MetaSize(m) > memberlist.MetaMaxSize && len(m.InterfacesUp) > 0 {
		last := len(m.InterfacesUp) - 1
		dropped = append(dropped, m.InterfacesUp[last])
		m.InterfacesUp = m.InterfacesUp[:last]
	}
	return m, dropped
}

// joinPeers joins the speakers of the other nodes, found at the nodes'
// InternalIPs of the memberlist address's family (IPv4 or IPv6, so that
// IPv6-only and IPv6-first clusters join too), and keeps retrying for
// nodes that are not members, so that a partition heals by itself.
func joinPeers(ctx context.Context, logger *slog.Logger, c client.Client, members *speakerlist.List, self string, bind netip.Addr, joined *atomic.Bool, kick func()) {
	for {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err == nil {
			peers := peerAddresses(nodes.Items, members.Members(), self, bind)
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

// peerAddresses returns the memberlist addresses of the nodes that are not
// members yet: each node's first InternalIP of bind's family.
func peerAddresses(nodes []corev1.Node, current map[string]speakerlist.Meta, self string, bind netip.Addr) []string {
	var peers []string
	for _, n := range nodes {
		if _, in := current[n.Name]; in || n.Name == self {
			continue
		}
		for _, a := range n.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() == bind.Is4() {
				peers = append(peers, ip.String())
				break
			}
		}
	}
	return peers
}

// nodeChanged passes Node updates that can change an election: labels,
// cordon, readiness, network availability and addresses. Every kubelet heartbeat rewrites the
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
		speaker.NodeEligible(o) != speaker.NodeEligible(n) ||
		!equality.Semantic.DeepEqual(o.Status.Addresses, n.Status.Addresses)
}}
