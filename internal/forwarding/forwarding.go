package forwarding

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/dataplane"
	"github.com/pharos-lb/pharos/internal/speaker"
	"github.com/pharos-lb/pharos/internal/speakerlist"
)

// Options configure the forwarding path.
type Options struct {
	// Node is this node's name.
	Node string
	// Default is the cluster's forwarding mode (v1beta1.ForwardingModes).
	Default string
	// NodeAddrs are this node's InternalIPs, for nodeport forwarding.
	NodeAddrs []netip.Addr
	// Table is the nftables table (inet family) the path owns; empty
	// means dataplane.DefaultTable.
	Table string
	// NetNS is a file descriptor of the network namespace to program; 0
	// means the speaker's own (tests give another).
	NetNS int
	// Resync is how often the table is read back and rewritten if someone
	// changed it; 0 means 10 s.
	Resync time.Duration
	// Logger receives the path's logs; nil discards them.
	Logger *slog.Logger
}

// Forwarding is the announcer of the node-local forwarding path. Apply
// only records the desired table; a worker writes it (one transaction),
// and every Resync checks that the kernel still has it, so a flushed or
// edited table heals itself. Its methods are safe for concurrent use.
type Forwarding struct {
	opts    Options
	log     *slog.Logger
	dp      *dataplane.Dataplane
	openErr error // the dataplane could not be opened: no CAP_NET_ADMIN, no nf_tables
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu       sync.Mutex
	want     dataplane.Config
	wantSet  bool
	written  *dataplane.Config // what the last successful Sync wrote
	syncErr  error
	sctpErr  map[string]string   // Service -> why its SCTP ports are not forwarded here
	problems map[string][]string // Service -> what cannot be forwarded
	// members are the speakers seen, with whether each was draining when
	// last seen: one that vanished without draining is dead.
	members map[string]bool
	dead    map[string]bool

	m metrics
}

var _ speaker.Announcer = (*Forwarding)(nil)

// New returns the forwarding path. If nftables cannot be programmed here
// (no CAP_NET_ADMIN, no nf_tables), it still returns a Forwarding, which
// reports the reason for every Service it should carry and keeps trying.
func New(opts Options) *Forwarding {
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Default == "" {
		opts.Default = v1beta1.ForwardingKubeProxy
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarding{opts: opts, log: opts.Logger.With("component", "forwarding"), wake: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{}), members: map[string]bool{}, dead: map[string]bool{}, m: newMetrics()}
	go f.run(ctx)
	return f
}

// Apply records the table this node should have for st and wakes the
// worker.
func (f *Forwarding) Apply(st *speaker.State) {
	f.mu.Lock()
	f.trackMembers(st.Members)
	cfg, problems := Desired(st, Input{Node: f.opts.Node, Default: f.opts.Default, NodeAddrs: f.opts.NodeAddrs, Dead: func(n string) bool { return f.dead[n] }})
	f.problems = map[string][]string{}
	for _, p := range problems {
		f.problems[p.Service] = append(f.problems[p.Service], p.Message)
	}
	changed := !f.wantSet || !reflect.DeepEqual(cfg, f.want)
	f.want, f.wantSet = cfg, true
	f.mu.Unlock()
	if changed {
		f.poke()
	}
}

// trackMembers updates the dead set: a speaker seen alive that is gone
// without having said it drains (a crash, a partition) is dead until it
// is back. One that drained (a rolling update, a node drain) is not: its
// pods may well be running.
func (f *Forwarding) trackMembers(alive map[string]speakerlist.Meta) {
	for n := range f.members {
		if _, ok := alive[n]; ok {
			continue
		}
		if !f.members[n] && !f.dead[n] {
			f.log.Info("a speaker vanished without draining: its node's endpoints leave the direct path", "node", n)
			f.dead[n] = true
		}
	}
	for n, m := range alive {
		f.members[n] = m.Draining
		if f.dead[n] {
			f.log.Info("a speaker is back: its node's ready endpoints return to the direct path", "node", n)
			delete(f.dead, n)
		}
	}
}

func (f *Forwarding) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run writes the desired table whenever it changes and checks it every
// Resync, until ctx ends.
func (f *Forwarding) run(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(f.opts.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			f.sync(false)
		case <-tick.C:
			f.sync(true)
		}
	}
}

// sync writes the desired table if it differs from what was written, or
// if check finds that the kernel's table is no longer what was written.
func (f *Forwarding) sync(check bool) {
	f.mu.Lock()
	want, wantSet, written := f.want, f.wantSet, f.written
	f.mu.Unlock()
	if !wantSet || (f.dp == nil && len(want.Frontends) == 0) {
		// Nothing to forward, and never anything written: no table, and
		// no need for CAP_NET_ADMIN (a cluster that leaves forwarding
		// to kube-proxy never gives it).
		return
	}
	if f.dp == nil {
		dp, err := dataplane.New(dataplane.Options{Table: f.opts.Table, NetNS: f.opts.NetNS, Logger: f.log})
		f.mu.Lock()
		// Set under mu for the metrics collector; only this worker
		// writes it.
		f.openErr, f.dp = err, dp
		f.mu.Unlock()
		if err != nil {
			f.m.errors.Inc()
			f.log.Warn("cannot program the forwarding path", "err", err)
			return
		}
	}
	if written != nil && reflect.DeepEqual(*written, want) {
		if !check {
			return
		}
		intact, err := f.dp.Check()
		if err == nil && intact {
			return
		}
		f.m.repairs.Inc()
		f.log.Warn("the forwarding table was changed behind our back: rewriting it", "table", f.dp.Table(), "err", err)
	}
	start := time.Now()
	err := f.dp.Sync(want)
	sctp := map[string]string{}
	if rest, left := withoutSCTP(want); err != nil && len(left) > 0 {
		// A kernel without SCTP NAT (nf_nat_sctp) refuses the whole
		// transaction: one protocol must not take the others down.
		for _, svc := range left {
			sctp[svc] = fmt.Sprintf("node %s cannot forward SCTP: %v", f.opts.Node, err)
		}
		err = f.dp.Sync(rest)
	}
	f.m.duration.Observe(time.Since(start).Seconds())
	f.mu.Lock()
	f.syncErr, f.sctpErr = err, sctp
	if err == nil {
		w := want
		f.written = &w
	}
	f.mu.Unlock()
	if err != nil {
		f.m.errors.Inc()
		f.log.Warn("writing the forwarding table", "err", err)
		return
	}
	f.m.frontends.Set(float64(len(want.Frontends)))
	f.log.Debug("forwarding table written", "frontends", len(want.Frontends), "took", time.Since(start))
}

// withoutSCTP returns cfg without its SCTP frontends, and the Services
// that had some.
func withoutSCTP(cfg dataplane.Config) (dataplane.Config, []string) {
	var rest dataplane.Config
	var left []string
	for _, fe := range cfg.Frontends {
		if fe.Protocol == dataplane.SCTP {
			if !slices.Contains(left, fe.Service) {
				left = append(left, fe.Service)
			}
			continue
		}
		rest.Frontends = append(rest.Frontends, fe)
	}
	return rest, left
}

// Describe says whether the address is forwarded directly, by which nodes,
// and this node's own failure if it carries the address.
func (f *Forwarding) Describe(a *speaker.Address) speaker.Report {
	var direct []string
	how := ""
	for _, svc := range a.Services {
		switch mode, _ := v1beta1.ForwardingOf(svc.Annotations, f.opts.Default); mode {
		case v1beta1.ForwardingDirect, v1beta1.ForwardingNodePort:
			direct = append(direct, svc.Namespace+"/"+svc.Name)
			how = map[string]string{v1beta1.ForwardingDirect: "forwarded directly to the endpoints", v1beta1.ForwardingNodePort: "handed to kube-proxy's NodePort"}[mode]
		}
	}
	if len(direct) == 0 {
		return speaker.Report{}
	}
	var carriers []string
	if n := a.L2Node(); n != "" {
		carriers = append(carriers, n)
	}
	for _, n := range a.BGP.Nodes {
		if !slices.Contains(carriers, n) {
			carriers = append(carriers, n)
		}
	}
	sort.Strings(carriers)
	if len(carriers) == 0 {
		// Nobody receives the address: the announcers say why.
		return speaker.Report{}
	}
	rep := speaker.Report{Applies: true, Announced: true,
		Message: how + " by node " + strings.Join(carriers, ", ")}
	f.mu.Lock()
	defer f.mu.Unlock()
	var issues []string
	for _, s := range direct {
		issues = append(issues, f.problems[s]...)
	}
	if Carries(a, f.opts.Node) {
		for _, s := range direct {
			if m := f.sctpErr[s]; m != "" {
				issues = append(issues, m)
			}
		}
		switch {
		case f.openErr != nil:
			issues = append(issues, fmt.Sprintf("node %s cannot program nftables: %v", f.opts.Node, f.openErr))
		case f.syncErr != nil:
			issues = append(issues, fmt.Sprintf("node %s failed to write its forwarding table: %v", f.opts.Node, f.syncErr))
		}
	}
	if len(issues) > 0 {
		rep.Reason = ReasonForwardingFailed
		rep.Message += " (" + strings.Join(issues, "; ") + ")"
	}
	return rep
}

// ReasonForwardingFailed is the Announced condition's reason when the
// address is announced but cannot be forwarded as asked.
const ReasonForwardingFailed = "ForwardingFailed"

// Collector returns the path's metrics.
func (f *Forwarding) Collector() prometheus.Collector { return collector{f} }

// droppedDesc is the packets each Service's frontends dropped (a source
// outside loadBalancerSourceRanges) or refused (no endpoint), as the
// kernel's counters in the table have them.
var droppedDesc = prometheus.NewDesc("pharos_forwarding_dropped_packets_total",
	"Packets to a Service's addresses that this node's forwarding table dropped (source outside loadBalancerSourceRanges) or refused (no endpoint).",
	[]string{"service"}, nil)

// collector is the path's metrics and its drop counters.
type collector struct{ f *Forwarding }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	c.f.m.Describe(ch)
	ch <- droppedDesc
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.f.m.Collect(ch)
	c.f.mu.Lock()
	dp := c.f.dp
	c.f.mu.Unlock()
	if dp == nil {
		return
	}
	dropped, err := dp.DroppedByService()
	if err != nil {
		c.f.log.Debug("reading the drop counters", "err", err)
		return
	}
	for svc, n := range dropped {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(n), svc)
	}
}

// Close stops the worker and removes the table.
func (f *Forwarding) Close() error {
	f.cancel()
	<-f.done
	if f.dp == nil {
		return nil
	}
	return f.dp.Close()
}

// metrics of the forwarding path.
type metrics struct {
	duration  prometheus.Histogram
	errors    prometheus.Counter
	repairs   prometheus.Counter
	frontends prometheus.Gauge
}

func newMetrics() metrics {
	return metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pharos_forwarding_sync_duration_seconds",
			Help: "Time to write the forwarding table (one nftables transaction).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_forwarding_sync_errors_total",
			Help: "Failed attempts to program the forwarding table."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_forwarding_repairs_total",
			Help: "Times the forwarding table was found changed by someone else and rewritten."}),
		frontends: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_forwarding_frontends",
			Help: "Service IP, protocol and port combinations this node forwards directly."}),
	}
}

// Describe implements prometheus.Collector.
func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.errors.Describe(ch)
	m.repairs.Describe(ch)
	m.frontends.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m metrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.errors.Collect(ch)
	m.repairs.Collect(ch)
	m.frontends.Collect(ch)
}
