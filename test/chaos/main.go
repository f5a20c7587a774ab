// Command chaos runs a bounded, seeded chaos test in the lab (as root):
// random Service creates, updates, pool moves and deletes, pool growth
// and shrinkage, controller and speaker kills, node link flaps and
// crashes, and kube-apiserver restarts, while it checks, every half
// second against the real apiserver, that no address is held by two
// Services unless they share by key, that none lies outside its pool, and
// that no Service nothing moved gets new addresses; and, from the client
// host, that two MACs never answer ARP for a watched address longer than
// -two-mac. When the faults stop and the cluster has restarted what they
// killed, every Service must answer on each of its addresses within 5 s.
//
// The seed (printed first) fixes the sequence of operations and their
// targets; timing in the cluster still varies from run to run. Figures
// go to stdout for hack/benchmerge; the report to stderr. It exits 1 on
// any violation.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
	"github.com/pharos-lb/pharos/test/bench/figures"
	"github.com/pharos-lb/pharos/test/chaos/invariant"
	"github.com/pharos-lb/pharos/test/lab/cluster"
	"github.com/pharos-lb/pharos/test/lab/routers"
)

var (
	seedFlag   = flag.Int64("seed", 0, "random seed; 0 picks one from the clock (it is printed, to repeat a run)")
	duration   = flag.Duration("duration", 4*time.Minute, "how long to inject faults")
	maxOps     = flag.Int("ops", 200, "at most this many operations (Service changes and faults)")
	twoMACMax  = flag.Duration("two-mac", 2*time.Second, "the longest two MACs may answer ARP for a watched address")
	answerMax  = flag.Duration("answer", 5*time.Second, "after the faults stop and every component runs again, how soon every address must answer")
	keepLab    = flag.Bool("keep", false, "leave the lab up afterwards")
	withBGP    = flag.Bool("bgp", true, "also advertise pool chaos-b by BGP (with BFD) to an FRR router in the lab's router namespace, restart its bgpd as a fault, and check its routes")
	bfdBound   = flag.Duration("bfd-bound", 3*time.Second, "how long after a node goes down FRR may still route an address to it (BFD detects in 900 ms)")
	maxService = 8
)

const namespace = "default"

// Pools: a and b are dual-stack; b grows by the extra ranges and shrinks
// back. All lie in the lab's LAN (198.18.96.0/19, 2001:db8:96::/64), on
// link for the router and the client.
var (
	poolA     = []string{"198.18.110.0/28", "2001:db8:96::110:0/124"}
	poolB     = []string{"198.18.111.0/28", "2001:db8:96::111:0/124"}
	poolBMore = []string{"198.18.112.0/29", "2001:db8:96::112:0/125"}
)

const base = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {run: web}}
  template:
    metadata: {labels: {run: web}}
    spec:
      containers: [{name: web, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: chaos}
spec: {ipAddressPools: [chaos-a, chaos-b]}
`

// bgpASN is the lab's one AS (iBGP between the router and the nodes).
const bgpASN = 64512

const bgpManifest = `apiVersion: pharos.io/v1beta1
kind: BFDProfile
metadata: {name: chaos}
spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: %[1]d, peerASN: %[1]d, peerAddress: %[2]q, bfdProfile: chaos, enableGracefulRestart: true, holdTime: 9s, connectTime: 2s}
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata: {name: chaos}
spec: {ipAddressPools: [chaos-b]}
`

func main() {
	flag.Parse()
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	fmt.Fprintf(os.Stderr, "chaos: seed %d (repeat with: make chaos CHAOS_FLAGS=-seed=%d)\n", seed, seed)
	r, err := run(seed)
	if r != nil {
		r.print(seed)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if len(r.violations) > 0 {
		os.Exit(1)
	}
}

// report counts what happened.
type report struct {
	mu         sync.Mutex
	ops        map[string]int
	faults     map[string]int
	violations []string
	twoMAC     time.Duration
	answered   time.Duration
	checks     int
	// grStale counts routes FRR kept to a down node under graceful
	// restart (see checkRoutes).
	grStale int
}

func (r *report) violate(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "chaos: VIOLATION", v)
	r.violations = append(r.violations, v)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func counts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

func (r *report) print(seed int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "chaos report (seed %d)\n", seed)
	fmt.Fprintf(os.Stderr, "  operations: %d (%s)\n", sum(r.ops), counts(r.ops))
	fmt.Fprintf(os.Stderr, "  faults:     %d (%s)\n", sum(r.faults), counts(r.faults))
	fmt.Fprintf(os.Stderr, "  checks:     %d snapshots of every Service and pool\n", r.checks)
	fmt.Fprintf(os.Stderr, "  two MACs:   longest episode %s (bound %s)\n", r.twoMAC, *twoMACMax)
	fmt.Fprintf(os.Stderr, "  answers:    every address within %s of the cluster settling (bound %s)\n", r.answered.Round(time.Millisecond), *answerMax)
	fmt.Fprintf(os.Stderr, "  BGP:        %d routes kept to a down node as stale under graceful restart (its speaker killed first; FRR keeps them up to %s)\n", r.grStale, grRestartTime)
	fmt.Fprintf(os.Stderr, "  violations: %d\n", len(r.violations))
	for _, v := range r.violations {
		fmt.Fprintln(os.Stderr, "    -", v)
	}
	figures.Report("Chaos", "chaos_ops", float64(sum(r.ops)))
	figures.Report("Chaos", "chaos_faults", float64(sum(r.faults)))
	figures.Report("Chaos", "chaos_violations", float64(len(r.violations)))
	figures.Report("Chaos", "chaos_two_mac_max_ms", float64(r.twoMAC.Milliseconds()))
	figures.Report("Chaos", "chaos_settled_answer_ms", float64(r.answered.Milliseconds()))
}

// svcSpec is what the runner last asked of one of its Services.
type svcSpec struct {
	pool   string
	port   int32
	shared bool
}

// chaos is one run's state.
type chaos struct {
	l       *cluster.Lab
	c       client.Client
	rnd     *rand.Rand
	rep     *report
	mu      sync.Mutex // guards check and services
	check   *invariant.Checker
	svcs    map[string]svcSpec
	next    int
	grown   bool
	pending []func() // faults to revert before the end
	// frr is the lab router's FRR, with -bgp.
	frr *routers.FRR
	// down holds the nodes cut off (crashed, or their link down) and
	// since when; guarded by mu.
	down map[string]time.Time
	// routedToDown remembers the violations reported, one per prefix,
	// node and episode.
	routedToDown map[string]bool
	// speakerKilled holds when each node's speaker was last killed, and
	// downUnderGR the down nodes whose speaker had been killed within the
	// graceful-restart time before: see checkRoutes. Guarded by mu.
	speakerKilled map[string]time.Time
	downUnderGR   map[string]bool
}

func run(seed int64) (*report, error) {
	if err := cluster.CheckHost(); err != nil {
		return nil, err
	}
	root, _ := os.Getwd()
	out := filepath.Join(root, "_output", "chaos")
	opts, err := cluster.Prepare(root, out, nil)
	if err != nil {
		return nil, err
	}
	opts.Prefix, opts.Dir = "pchs", filepath.Join(out, "lab")
	l, err := cluster.New(opts)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		return nil, err
	}
	var ch *chaos
	defer func() {
		if ch != nil && len(ch.rep.violations) > 0 {
			// Keep the evidence: the lab's directory goes with it.
			kept := filepath.Join(out, "logs-"+time.Now().UTC().Format("20060102T150405"))
			_ = exec.Command("cp", "-r", l.LogDir(), kept).Run()
			fmt.Fprintf(os.Stderr, "chaos: component logs are in %s\n", kept)
		}
		if *keepLab {
			fmt.Fprintf(os.Stderr, "chaos: the lab stays up (-keep); tear it down with: go run ./test/lab down --prefix %s --dir %s\n", opts.Prefix, opts.Dir)
			return
		}
		_ = l.Down()
	}()
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	ch = &chaos{
		l: l, c: c, rnd: rand.New(rand.NewSource(seed)),
		rep:   &report{ops: map[string]int{}, faults: map[string]int{}},
		check: invariant.New(), svcs: map[string]svcSpec{},
		down: map[string]time.Time{}, routedToDown: map[string]bool{},
		speakerKilled: map[string]time.Time{}, downUnderGR: map[string]bool{},
	}
	if err := ch.setUp(ctx); err != nil {
		return ch.rep, err
	}
	if *withBGP {
		if err := ch.startBGP(ctx); err != nil {
			return ch.rep, err
		}
		defer func() { _ = ch.frr.Stop() }()
	}

	// Two Services that no operation touches: their addresses are watched
	// over ARP from the client host for the whole run.
	var watches []*cluster.ARPWatch
	for _, name := range []string{"c-00", "c-01"} {
		ip, err := ch.waitV4(ctx, name)
		if err != nil {
			return ch.rep, err
		}
		w, err := l.WatchARP(l.Client.Name, ip, 20*time.Millisecond)
		if err != nil {
			return ch.rep, err
		}
		watches = append(watches, w)
	}
	watchFrom := time.Now()

	checkCtx, stopChecks := context.WithCancel(ctx)
	checks := make(chan struct{})
	go func() { defer close(checks); ch.checkLoop(checkCtx) }()

	end := time.Now().Add(*duration)
	for i := 0; i < *maxOps && time.Now().Before(end); i++ {
		ch.step(ctx)
		time.Sleep(time.Duration(300+ch.rnd.Intn(1700)) * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "chaos: faults stop; reverting what is still broken")
	for _, revert := range ch.pending {
		revert()
	}
	ch.pending = nil
	settled, err := ch.waitSettled(ctx)
	if err != nil {
		ch.rep.violate("the cluster did not settle after the faults stopped: %v", err)
	}
	if err == nil {
		ch.finalAnswers(ctx, settled)
		if ch.frr != nil {
			ch.finalRoutes(ctx)
		}
	}
	stopChecks()
	<-checks
	ch.observe(ctx) // one last look, after everything settled
	ch.unmet(ctx)

	for i, w := range watches {
		answers := w.Stop()
		s := cluster.SummarizeARP(answers, 60*time.Millisecond, watchFrom, time.Now())
		fmt.Fprintf(os.Stderr, "chaos: ARP for c-0%d: %s (from %s), longest two-MAC episode %s\n", i, s, s.SilenceFrom.Format("15:04:05.000"), s.LongestTwoMAC)
		ch.rep.twoMAC = max(ch.rep.twoMAC, s.LongestTwoMAC)
		if s.LongestTwoMAC > *twoMACMax {
			ch.rep.violate("two MACs answered ARP for c-0%d's address for %s at once, longer than %s", i, s.LongestTwoMAC, *twoMACMax)
		}
	}
	return ch.rep, nil
}

func (ch *chaos) setUp(ctx context.Context) error {
	if err := ch.l.Apply(ctx, base); err != nil {
		return err
	}
	for _, p := range []struct {
		name  string
		addrs []string
	}{{"chaos-a", poolA}, {"chaos-b", poolB}} {
		obj := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: p.name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: p.addrs}}
		if err := ch.c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating pool %s: %w", p.name, err)
		}
	}
	for _, pool := range []string{"chaos-a", "chaos-b", "chaos-a", "chaos-b"} {
		if err := ch.create(ctx, pool, false); err != nil {
			return err
		}
	}
	return nil
}

// waitV4 waits for a Service's IPv4 address and for it to answer.
func (ch *chaos) waitV4(ctx context.Context, name string) (netip.Addr, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var s corev1.Service
		if err := ch.c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err == nil {
			for _, in := range s.Status.LoadBalancer.Ingress {
				a, err := netip.ParseAddr(in.IP)
				if err != nil || !a.Is4() {
					continue
				}
				url := "http://" + net.JoinHostPort(in.IP, fmt.Sprint(s.Spec.Ports[0].Port)) + "/"
				if _, err := ch.l.HTTPGet(ctx, ch.l.Client.Name, url); err == nil {
					return a, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("service %s has no answering IPv4 address after 2m", name)
		}
		time.Sleep(time.Second)
	}
}

// op is one kind of operation, with its weight in the draw.
type op struct {
	name   string
	weight int
	fault  bool
	do     func(ctx context.Context) (string, error)
}

func (ch *chaos) ops() []op {
	return []op{
		{"create-service", 6, false, ch.opCreate},
		{"delete-service", 4, false, ch.opDelete},
		{"change-ports", 4, false, ch.opPorts},
		{"move-pool", 3, false, ch.opMove},
		{"resize-pool", 3, false, ch.opResize},
		{"kill-controller", 2, true, ch.opKillController},
		{"kill-speaker", 3, true, ch.opKillSpeaker},
		{"flap-link", 3, true, ch.opFlap},
		{"crash-node", 2, true, ch.opCrash},
		{"restart-apiserver", 1, true, ch.opRestartAPIServer},
		{"restart-router", 1, true, ch.opRestartRouter},
	}
}

func (ch *chaos) step(ctx context.Context) {
	ops := ch.ops()
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := ch.rnd.Intn(total)
	var o op
	for _, o = range ops {
		if n < o.weight {
			break
		}
		n -= o.weight
	}
	started := time.Now()
	what, err := o.do(ctx)
	if what == "" {
		return // nothing to do for it now
	}
	fmt.Fprintf(os.Stderr, "chaos: %s %s: %s\n", started.Format("15:04:05.000"), o.name, what)
	if err != nil {
		// Operations go through a cluster under faults: a refused write
		// is expected, and not a violation by itself.
		fmt.Fprintf(os.Stderr, "chaos:   (it failed: %v)\n", err)
	}
	ch.rep.mu.Lock()
	if o.fault {
		ch.rep.faults[o.name]++
	} else {
		ch.rep.ops[o.name]++
	}
	ch.rep.mu.Unlock()
}

// names lists the runner's Services other than the two watched ones, in
// order.
func (ch *chaos) names() []string {
	var out []string
	for n := range ch.svcs {
		if n != "c-00" && n != "c-01" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (ch *chaos) pick(names []string) string { return names[ch.rnd.Intn(len(names))] }

func (ch *chaos) service(name string, s svcSpec) *corev1.Service {
	policy := corev1.IPFamilyPolicyRequireDualStack
	ann := map[string]string{v1beta1.AnnotationAddressPool: s.pool}
	if s.shared {
		ann[v1beta1.AnnotationAllowSharedIP] = "shared-" + s.pool
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: ann},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: &policy,
			Selector:       map[string]string{"run": "web"},
			Ports:          []corev1.ServicePort{{Name: "http", Port: s.port, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func (ch *chaos) create(ctx context.Context, pool string, shared bool) error {
	name := fmt.Sprintf("c-%02d", ch.next)
	ch.next++
	// Services sharing a key need ports of their own.
	s := svcSpec{pool: pool, port: 80, shared: shared}
	if shared {
		s.port = int32(8000 + ch.next)
	}
	ch.mu.Lock()
	ch.check.Expect(namespace+"/"+name, pool)
	ch.svcs[name] = s
	ch.mu.Unlock()
	return ch.c.Create(ctx, ch.service(name, s))
}

func randomPool(r *rand.Rand) string {
	if r.Intn(2) == 0 {
		return "chaos-a"
	}
	return "chaos-b"
}

func (ch *chaos) opCreate(ctx context.Context) (string, error) {
	if len(ch.svcs) >= maxService {
		return "", nil
	}
	pool, shared := randomPool(ch.rnd), ch.rnd.Intn(3) == 0
	err := ch.create(ctx, pool, shared)
	return fmt.Sprintf("c-%02d in %s (shared by key: %v)", ch.next-1, pool, shared), err
}

func (ch *chaos) opDelete(ctx context.Context) (string, error) {
	names := ch.names()
	if len(names) < 2 {
		return "", nil
	}
	name := ch.pick(names)
	err := ch.c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
	if err == nil || apierrors.IsNotFound(err) {
		ch.mu.Lock()
		delete(ch.svcs, name)
		ch.check.Forget(namespace + "/" + name)
		ch.mu.Unlock()
	}
	return name, err
}

// update applies fn to the Service's last spec and writes the whole spec
// part the runner owns, retrying on conflicts.
func (ch *chaos) update(ctx context.Context, name string, s svcSpec) error {
	var err error
	for i := 0; i < 5; i++ {
		var cur corev1.Service
		if err = ch.c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cur); err != nil {
			return err
		}
		want := ch.service(name, s)
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		for _, k := range []string{v1beta1.AnnotationAddressPool, v1beta1.AnnotationAllowSharedIP} {
			delete(cur.Annotations, k)
			if v, ok := want.Annotations[k]; ok {
				cur.Annotations[k] = v
			}
		}
		cur.Spec.Ports[0].Port = s.port
		if err = ch.c.Update(ctx, &cur); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

func (ch *chaos) opPorts(ctx context.Context) (string, error) {
	var names []string
	for _, n := range ch.names() {
		if !ch.svcs[n].shared {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	name := ch.pick(names)
	s := ch.svcs[name]
	s.port = 80 + 8000 - s.port // 80 <-> 8000
	err := ch.update(ctx, name, s)
	if err == nil {
		ch.svcs[name] = s
	}
	return fmt.Sprintf("%s to port %d (its addresses must stay)", name, s.port), err
}

func (ch *chaos) opMove(ctx context.Context) (string, error) {
	names := ch.names()
	if len(names) == 0 {
		return "", nil
	}
	name := ch.pick(names)
	s := ch.svcs[name]
	s.pool = map[string]string{"chaos-a": "chaos-b", "chaos-b": "chaos-a"}[s.pool]
	ch.mu.Lock()
	ch.check.Expect(namespace+"/"+name, s.pool)
	ch.mu.Unlock()
	err := ch.update(ctx, name, s)
	if err == nil {
		ch.svcs[name] = s
	}
	return fmt.Sprintf("%s to %s", name, s.pool), err
}

func (ch *chaos) opResize(ctx context.Context) (string, error) {
	var p v1beta1.IPAddressPool
	if err := ch.c.Get(ctx, types.NamespacedName{Name: "chaos-b"}, &p); err != nil {
		return "chaos-b", err
	}
	if !ch.grown {
		p.Spec.Addresses = append(slices.Clone(poolB), poolBMore...)
		err := ch.c.Update(ctx, &p)
		if err == nil {
			ch.grown = true
		}
		return "chaos-b grows by " + strings.Join(poolBMore, ", "), err
	}
	var removed []config.Range
	for _, s := range poolBMore {
		r, _ := config.ParseRange(s)
		removed = append(removed, r)
	}
	// Services holding addresses in the removed ranges keep them (the
	// pool's protection); note who holds what before and just after.
	ch.mu.Lock()
	if svcs, _, err := ch.snapshot(ctx); err == nil {
		ch.check.Shrunk(removed, svcs)
	}
	ch.mu.Unlock()
	p.Spec.Addresses = slices.Clone(poolB)
	err := ch.c.Update(ctx, &p)
	if err == nil {
		ch.grown = false
		time.Sleep(time.Second)
		ch.mu.Lock()
		if svcs, _, err := ch.snapshot(ctx); err == nil {
			ch.check.Shrunk(removed, svcs)
		}
		ch.mu.Unlock()
	}
	return "chaos-b shrinks back to " + strings.Join(poolB, ", "), err
}

func (ch *chaos) opKillController(context.Context) (string, error) {
	pid, ok := ch.l.PID("pharos-controller")
	if !ok {
		return "", nil
	}
	// The lab restarts it with the kubelet's back-off; the new one waits
	// for the killed one's lease to expire: a leader change.
	return "SIGKILL, as a crash", syscall.Kill(pid, syscall.SIGKILL)
}

func (ch *chaos) randomNode() cluster.Node { return ch.l.Nodes[ch.rnd.Intn(len(ch.l.Nodes))] }

func (ch *chaos) opKillSpeaker(context.Context) (string, error) {
	n := ch.randomNode()
	pid, ok := ch.l.PID(n.Name + "-speaker")
	if !ok {
		return "", nil
	}
	ch.mu.Lock()
	ch.speakerKilled[n.Name] = time.Now()
	ch.mu.Unlock()
	return n.Name + "'s speaker, SIGKILL", syscall.Kill(pid, syscall.SIGKILL)
}

func (ch *chaos) opFlap(context.Context) (string, error) {
	n := ch.randomNode()
	down := time.Duration(500+ch.rnd.Intn(2500)) * time.Millisecond
	ch.setDown(n.Name, true)
	defer ch.setDown(n.Name, false)
	if err := ch.l.LinkDown(n.Name); err != nil {
		return n.Name, err
	}
	time.Sleep(down)
	return fmt.Sprintf("%s's LAN link down for %s", n.Name, down), ch.l.LinkUp(n.Name)
}

func (ch *chaos) opCrash(ctx context.Context) (string, error) {
	n := ch.randomNode()
	down := time.Duration(2000+ch.rnd.Intn(6000)) * time.Millisecond
	ch.setDown(n.Name, true)
	defer ch.setDown(n.Name, false)
	if err := ch.l.CrashNode(n.Name); err != nil {
		return n.Name, err
	}
	time.Sleep(down)
	return fmt.Sprintf("%s crashed for %s", n.Name, down), ch.l.RecoverNode(ctx, n.Name)
}

func (ch *chaos) opRestartAPIServer(ctx context.Context) (string, error) {
	return "killed and started again", ch.l.RestartAPIServer(ctx)
}

// snapshot reads every Service of the runner's and every pool's ranges.
func (ch *chaos) snapshot(ctx context.Context) ([]invariant.Service, map[string][]config.Range, error) {
	var svcs corev1.ServiceList
	if err := ch.c.List(ctx, &svcs, client.InNamespace(namespace)); err != nil {
		return nil, nil, err
	}
	var pools v1beta1.IPAddressPoolList
	if err := ch.c.List(ctx, &pools); err != nil {
		return nil, nil, err
	}
	ranges := map[string][]config.Range{}
	for _, p := range pools.Items {
		ranges[p.Name] = nil
		for _, a := range p.Spec.Addresses {
			if r, err := config.ParseRange(a); err == nil {
				ranges[p.Name] = append(ranges[p.Name], r)
			}
		}
	}
	var out []invariant.Service
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		is := invariant.Service{Name: s.Namespace + "/" + s.Name, Pool: s.Annotations[v1beta1.AnnotationAllocatedFromPool], SharingKey: s.Annotations[v1beta1.AnnotationAllowSharedIP]}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				is.IPs = append(is.IPs, a)
			}
		}
		out = append(out, is)
	}
	return out, ranges, nil
}

func (ch *chaos) observe(ctx context.Context) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	svcs, pools, err := ch.snapshot(ctx)
	if err != nil {
		return // the apiserver is down or restarting: nothing to read
	}
	ch.rep.mu.Lock()
	ch.rep.checks++
	ch.rep.mu.Unlock()
	for _, v := range ch.check.Observe(svcs, pools) {
		ch.rep.violate("%s", v)
	}
}

func (ch *chaos) checkLoop(ctx context.Context) {
	for ctx.Err() == nil {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		ch.observe(c)
		if ch.frr != nil {
			ch.checkRoutes(c)
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitSettled waits until every node's agent, kube-proxy and speaker and
// the controller run again (the lab restarts killed ones with the
// kubelet's back-off), every node is Ready, the backends are all ready
// and listed in every Service's EndpointSlices, and the controller leads
// (renews its lease); it returns that moment.
func (ch *chaos) waitSettled(ctx context.Context) (time.Time, error) {
	names := []string{"pharos-controller", "kube-apiserver"}
	for _, n := range ch.l.Nodes {
		names = append(names, n.Name+"-agent", n.Name+"-proxy", n.Name+"-speaker")
	}
	deadline := time.Now().Add(8 * time.Minute)
	last := ""
	for {
		why := ""
		for _, n := range names {
			if !ch.l.Running(n) {
				why = n + " is not running"
				break
			}
		}
		if why == "" {
			var d appsv1.Deployment
			err := ch.c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "web"}, &d)
			switch {
			case err != nil:
				why = err.Error()
			case d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas:
				why = fmt.Sprintf("web has %d of %d ready", d.Status.ReadyReplicas, *d.Spec.Replicas)
			}
		}
		if why == "" {
			why = ch.endpointsBehind(ctx)
		}
		if why == "" {
			// A restarted controller runs before it leads: it waits out
			// the killed one's lease. Settled means it renews its own.
			var lease coordinationv1.Lease
			err := ch.c.Get(ctx, types.NamespacedName{Namespace: "pharos-system", Name: "pharos-controller"}, &lease)
			switch {
			case err != nil:
				why = "the controller's lease: " + err.Error()
			case lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > 3*time.Second:
				why = "no controller holds the lease"
			}
		}
		if why == "" {
			var nodes corev1.NodeList
			if err := ch.c.List(ctx, &nodes); err != nil {
				why = err.Error()
			}
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
						why = n.Name + " is not Ready"
					}
				}
			}
		}
		if why == "" {
			fmt.Fprintln(os.Stderr, "chaos: settled: every component runs, every node is Ready, every backend ready and in every EndpointSlice")
			return time.Now(), nil
		}
		if why != last {
			fmt.Fprintln(os.Stderr, "chaos: settling:", why)
			last = why
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("after 8m: %s", why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// endpointsBehind says which Service's EndpointSlices do not yet list all
// three backends as ready in each family, or "" when none: the answers
// are Pharos's to give only once Kubernetes has endpoints for them (after
// an apiserver restart, kube-controller-manager can lag for minutes).
func (ch *chaos) endpointsBehind(ctx context.Context) string {
	ch.mu.Lock()
	names := make([]string, 0, len(ch.svcs))
	for n := range ch.svcs {
		names = append(names, n)
	}
	ch.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		var list discoveryv1.EndpointSliceList
		if err := ch.c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
			return err.Error()
		}
		ready := cluster.ReadyEndpoints(list.Items)
		if ready[discoveryv1.AddressTypeIPv4] != 3 || ready[discoveryv1.AddressTypeIPv6] != 3 {
			return fmt.Sprintf("Service %s's EndpointSlices list %d IPv4 and %d IPv6 ready endpoints of 3", name, ready[discoveryv1.AddressTypeIPv4], ready[discoveryv1.AddressTypeIPv6])
		}
	}
	return ""
}

// finalAnswers checks that every address of every Service answers within
// -answer of the cluster settling.
func (ch *chaos) finalAnswers(ctx context.Context, settled time.Time) {
	deadline := settled.Add(*answerMax)
	var svcs corev1.ServiceList
	for {
		if err := ch.c.List(ctx, &svcs, client.InNamespace(namespace)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if len(s.Status.LoadBalancer.Ingress) < 2 {
			ch.rep.violate("%s has %d addresses after the cluster settled, want one per family", s.Name, len(s.Status.LoadBalancer.Ingress))
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			url := "http://" + net.JoinHostPort(in.IP, fmt.Sprint(s.Spec.Ports[0].Port)) + "/"
			wg.Add(1)
			go func(name, url string) {
				defer wg.Done()
				for {
					c, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := ch.l.HTTPGet(c, ch.l.Client.Name, url)
					cancel()
					if err == nil {
						ch.rep.mu.Lock()
						ch.rep.answered = max(ch.rep.answered, time.Since(settled))
						ch.rep.mu.Unlock()
						return
					}
					if time.Now().After(deadline) {
						ch.rep.violate("%s does not answer on %s %s after the cluster settled: %v", name, url, *answerMax, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}(s.Name, url)
		}
	}
	wg.Wait()
}

// unmet reports Services the runner moved or created whose addresses
// never came from the pool asked for.
func (ch *chaos) unmet(ctx context.Context) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	svcs, _, err := ch.snapshot(ctx)
	if err != nil {
		ch.rep.violate("reading Services at the end: %v", err)
		return
	}
	got := map[string]invariant.Service{}
	for _, s := range svcs {
		got[s.Name] = s
	}
	for name, s := range ch.svcs {
		g := got[namespace+"/"+name]
		if g.Pool != s.pool || len(g.IPs) == 0 {
			ch.rep.violate("%s asked for pool %s and has %v from %q at the end", name, s.pool, g.IPs, g.Pool)
		}
	}
}

// startBGP starts FRR in the lab's router namespace, peering with every
// node over IPv4 with BFD, and advertises pool chaos-b to it.
func (ch *chaos) startBGP(ctx context.Context) error {
	dir := filepath.Join(ch.l.Dir, "frr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := routers.FRRConfig{Namespace: ch.l.Router.Name, Dir: dir, RouterID: ch.l.Router.V4, ASN: bgpASN, Forwarding: true}
	for _, n := range ch.l.Nodes {
		cfg.Neighbors = append(cfg.Neighbors, routers.FRRNeighbor{Address: n.V4, RemoteASN: bgpASN, BFD: &routers.BFDTimers{}})
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	frr, err := routers.StartFRR(c, cfg)
	if err != nil {
		if frr != nil {
			_ = frr.Stop()
		}
		return fmt.Errorf("starting FRR in %s: %w", ch.l.Router.Name, err)
	}
	ch.frr = frr
	return ch.l.Apply(ctx, fmt.Sprintf(bgpManifest, bgpASN, ch.l.Router.V4))
}

func (ch *chaos) opRestartRouter(ctx context.Context) (string, error) {
	if ch.frr == nil {
		return "", nil
	}
	return "FRR's bgpd killed and started again", ch.frr.RestartBGPD(ctx)
}

func (ch *chaos) setDown(node string, down bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if down {
		ch.down[node] = time.Now()
		t, ok := ch.speakerKilled[node]
		ch.downUnderGR[node] = ok && time.Since(t) < grRestartTime
	} else {
		delete(ch.down, node)
		delete(ch.downUnderGR, node)
	}
}

// grRestartTime is the graceful-restart time the speakers advertise
// (internal/bgpannounce): how long FRR keeps a silent speaker's routes.
const grRestartTime = 120 * time.Second

// checkRoutes checks that FRR routes no address to a node that has been
// down (crashed, or its link down) for longer than -bfd-bound. A node
// whose speaker had been killed shortly before is the exception that
// graceful restart makes: the session was already down, so BFD has
// nothing left to detect, and FRR keeps the routes as stale for up to the
// restart time (the speaker's death alone must not withdraw a node that
// still forwards). Those are counted and reported, not violations.
func (ch *chaos) checkRoutes(ctx context.Context) {
	ch.mu.Lock()
	var stale []cluster.Node
	since := map[string]time.Time{}
	underGR := map[string]bool{}
	for _, n := range ch.l.Nodes {
		if t, ok := ch.down[n.Name]; ok && time.Since(t) > *bfdBound {
			stale = append(stale, n)
			since[n.Name] = t
			underGR[n.Name] = ch.downUnderGR[n.Name]
		}
	}
	ch.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	routes, err := ch.frr.Routes(ctx, routers.IPv4)
	if err != nil {
		return // bgpd restarting
	}
	for prefix, hops := range routes {
		for _, n := range stale {
			if !slices.Contains(hops, n.V4) {
				continue
			}
			key := fmt.Sprintf("%s/%s/%d", prefix, n.Name, since[n.Name].UnixNano())
			ch.mu.Lock()
			seen := ch.routedToDown[key]
			ch.routedToDown[key] = true
			ch.mu.Unlock()
			switch {
			case seen:
			case underGR[n.Name]:
				ch.rep.mu.Lock()
				ch.rep.grStale++
				ch.rep.mu.Unlock()
				fmt.Fprintf(os.Stderr, "chaos: note: FRR keeps %s via %s (%s), down for %s, as stale under graceful restart: its speaker had been killed before the node went down\n", prefix, n.V4, n.Name, time.Since(since[n.Name]).Round(time.Millisecond))
			default:
				ch.rep.violate("FRR routes %s via %s (%s), down for %s, longer than BFD should take (%s)", prefix, n.V4, n.Name, time.Since(since[n.Name]).Round(time.Millisecond), *bfdBound)
			}
		}
	}
}

// finalRoutes checks, once the cluster has settled, that FRR routes every
// IPv4 address of pool chaos-b's Services, only to nodes, within 15 s
// (sessions that a fault reset come back after their connect timer).
func (ch *chaos) finalRoutes(ctx context.Context) {
	nodes := map[netip.Addr]bool{}
	for _, n := range ch.l.Nodes {
		nodes[n.V4] = true
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var problems []string
		svcs, _, err := ch.snapshot(ctx)
		routes, rerr := ch.frr.Routes(ctx, routers.IPv4)
		if err == nil && rerr == nil {
			for _, s := range svcs {
				if s.Pool != "chaos-b" {
					continue
				}
				for _, a := range s.IPs {
					if !a.Is4() {
						continue
					}
					hops := routes[netip.PrefixFrom(a, 32)]
					if len(hops) == 0 {
						problems = append(problems, fmt.Sprintf("FRR has no route to %s (%s) after the cluster settled", a, s.Name))
					}
					for _, h := range hops {
						if !nodes[h] {
							problems = append(problems, fmt.Sprintf("FRR routes %s (%s) via %s, which is no node", a, s.Name, h))
						}
					}
				}
			}
		} else {
			problems = append(problems, fmt.Sprintf("reading Services and FRR's routes: %v %v", err, rerr))
		}
		if len(problems) == 0 {
			fmt.Fprintln(os.Stderr, "chaos: FRR routes every BGP-advertised IPv4 address to nodes")
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				ch.rep.violate("%s", p)
			}
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
