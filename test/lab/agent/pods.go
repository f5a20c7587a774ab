package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

const (
	// resyncInterval is how often every pod is compared with what runs
	// here, so anything that slipped past the watch (a died echo server
	// whose exit was missed, a netns deleted by hand) gets fixed.
	resyncInterval = 30 * time.Second
	// podWorkers bounds how many pods are set up at once. Each start waits
	// up to readyTimeout for its server, so one worker would make a scale-up
	// crawl, while many would only compete for the lab's two cores.
	podWorkers = 4
)

// slot is one pod as the agent runs it. Everything in it except the map
// membership is touched only by the worker that holds the pod's key (the
// workqueue never hands one key to two workers at once).
type slot struct {
	key   string
	uid   types.UID
	idx   int          // netns index, 0 until assigned
	netns string       // PodNetnsPrefix+idx
	addrs []netip.Addr // one per pod CIDR, same order; zero until allocated
	netUp bool         // network built by this agent run
	proc  *podProc     // the echo server, or a Pharos pod's process

	ports     []int
	restarts  int32
	startedAt metav1.Time

	failures  int       // consecutive failed starts
	notBefore time.Time // no new start attempt before this

	// Pharos pods only (procpods.go).
	creds     *credentials                     // its ServiceAccount token and kubeconfig
	lastExit  *corev1.ContainerStateTerminated // how the latest run ended
	prevExit  *corev1.ContainerStateTerminated // and the one before
	final     bool                             // the latest run ended the pod (restartPolicy)
	restartAt time.Time                        // CrashLoopBackOff: no restart before this
	crashes   int                              // consecutive short runs, for that back-off
}

// podManager runs the pods bound to this node.
type podManager struct {
	cs     kubernetes.Interface
	opts   Options
	log    *slog.Logger
	lister corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]

	mu        sync.Mutex
	slots     map[string]*slot      // by pod key "namespace/name"
	usedAddrs map[netip.Addr]string // address -> owner (pod key, or "orphan:<netns>")
	usedIdx   map[int]string        // netns index -> owner

	// hostNetns is the name of the agent's netns, where hostNetwork pods
	// run; set by run before any pod is reconciled.
	hostNetns string
}

func newPodManager(cs kubernetes.Interface, opts Options, log *slog.Logger) *podManager {
	return &podManager{
		cs:   cs,
		opts: opts,
		log:  log,
		// For errors other than a failed pod start (those keep their own
		// backoff in the slot), mostly apiserver trouble.
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, time.Minute)),
		slots:     map[string]*slot{},
		usedAddrs: map[netip.Addr]string{},
		usedIdx:   map[int]string{},
	}
}

// run watches this node's pods and reconciles them until ctx ends, then
// stops every echo server (leaving the netns in place) and returns.
func (m *podManager) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(m.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.opts.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods()
	inf := podInformer.Informer()
	m.lister = podInformer.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			m.queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		m.log.Error("cannot watch pods", "err", err)
		return
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		m.queue.ShutDown()
		return
	}

	if err := pinBridgeMAC(ctx, m.opts.Bridge, gatewayOf(m.opts.PodCIDRs[0])); err != nil {
		m.log.Warn("cannot pin the pod bridge's MAC address; pod traffic may stall after pod deletions", "err", err)
	}
	m.adopt(ctx)
	m.hostNetns = ownNetns(ctx)

	var wg sync.WaitGroup
	for range podWorkers {
		wg.Go(func() {
			for m.processNext(ctx) {
			}
		})
	}
	m.enqueueAll()
	t := time.NewTicker(resyncInterval)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			m.enqueueAll()
		}
	}
	t.Stop()
	m.queue.ShutDown()
	wg.Wait()
	m.stopAll()
}

// enqueueAll queues every pod the apiserver has for this node and every pod
// running here, so both "should run but does not" and "runs but should
// not" are seen.
func (m *podManager) enqueueAll() {
	pods, _ := m.lister.List(labels.Everything())
	for _, p := range pods {
		m.queue.Add(p.Namespace + "/" + p.Name)
	}
	m.mu.Lock()
	for key := range m.slots {
		m.queue.Add(key)
	}
	m.mu.Unlock()
}

func (m *podManager) processNext(ctx context.Context) bool {
	key, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(key)
	err := m.reconcile(ctx, key)
	switch {
	case err == nil:
		m.queue.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the failure is most likely the cancellation itself.
	default:
		m.log.Warn("pod not reconciled; will retry", "pod", key, "err", err, "attempt", m.queue.NumRequeues(key)+1)
		m.queue.AddRateLimited(key)
	}
	return true
}

// reconcile makes what runs here for key match the Pod in the informer
// cache: nothing if the pod is gone or terminating, a serving echo server in
// a wired netns otherwise, or for a Pharos pod its binary (procpods.go).
func (m *podManager) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key we made; nothing to retry
	}
	pod, err := m.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		pod = nil
	} else if err != nil {
		return err
	}

	m.mu.Lock()
	s := m.slots[key]
	m.mu.Unlock()

	// Whatever runs for a previous incarnation of this name, or for a pod
	// that is going away, is stopped first.
	if s != nil && (pod == nil || pod.UID != s.uid || pod.DeletionTimestamp != nil || terminal(pod)) {
		if err := m.teardown(ctx, s, stopGraceFor(pod, s)); err != nil {
			return err
		}
		m.log.Info("pod stopped", "pod", key, "netns", s.netns)
		s = nil
	}
	switch {
	case pod == nil:
		return nil
	case pod.DeletionTimestamp != nil:
		return m.finalizeDeletion(ctx, pod)
	case terminal(pod):
		return nil
	}
	pp, isPharos, err := m.opts.pharosPodOf(pod)
	switch {
	case err != nil:
		return m.unsupported(ctx, pod, err.Error())
	case pod.Spec.HostNetwork && !isPharos:
		// A hostNetwork pod would share the node's netns, where an echo
		// server could clash with kube-proxy's or FRR's ports; say so on
		// the pod instead of pretending it runs.
		return m.unsupported(ctx, pod, "the lab node agent does not run hostNetwork pods")
	}

	if s == nil {
		s = &slot{key: key, uid: pod.UID, addrs: make([]netip.Addr, len(m.opts.PodCIDRs))}
		m.mu.Lock()
		m.slots[key] = s
		m.mu.Unlock()
	}
	// A pod that failed to start waits out its backoff. The slot keeps the
	// time rather than the workqueue's rate limiter because the failure
	// status the agent writes comes back as a watch event, which would
	// otherwise trigger an immediate retry.
	if wait := time.Until(s.notBefore); wait > 0 {
		m.queue.AddAfter(key, wait)
		return nil
	}
	var started bool
	if isPharos {
		started, err = m.ensureProcess(ctx, pod, s, pp)
	} else {
		started, err = m.ensureStarted(ctx, pod, s)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.failures++
		delay := min(time.Second<<min(s.failures-1, 6), time.Minute)
		s.notBefore = time.Now().Add(delay)
		m.fail(ctx, pod, s, err, delay)
		m.queue.AddAfter(key, delay)
		return nil
	}
	s.failures, s.notBefore = 0, time.Time{}
	if isPharos {
		if started {
			m.log.Info("pod process started", "pod", key, "netns", s.netns, "ips", m.podIPs(s, pp), "argv0", s.proc.what, "restarts", s.restarts)
		}
		return m.writeProcessStatus(ctx, pod, s, pp)
	}
	if started {
		m.log.Info("pod started", "pod", key, "netns", s.netns, "ips", s.addrs, "ports", s.ports, "restarts", s.restarts)
	}
	v := m.view(s)
	if runningStatusCurrent(pod, v) {
		return nil
	}
	return m.writeStatus(ctx, pod, func(p *corev1.Pod) (corev1.PodStatus, bool) {
		return runningStatus(p, v, metav1.Now()), !runningStatusCurrent(p, v)
	})
}

// unsupported reports on the pod why the lab cannot run it; it is not
// retried, as the reason lies in the pod's spec.
func (m *podManager) unsupported(ctx context.Context, pod *corev1.Pod, msg string) error {
	if failedStatusCurrent(pod, msg) {
		return nil
	}
	return m.writeStatus(ctx, pod, func(p *corev1.Pod) (corev1.PodStatus, bool) {
		return failedStatus(p, m.opts.InternalIPs, 0, "Unsupported", msg, metav1.Now()), !failedStatusCurrent(p, msg)
	})
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// ensureStarted brings the pod's network and echo server up if they are
// not, and reports whether it (re)started the server.
func (m *podManager) ensureStarted(ctx context.Context, pod *corev1.Pod, s *slot) (bool, error) {
	if err := m.ensureNetwork(ctx, s); err != nil {
		return false, err
	}
	if s.proc != nil && !s.proc.exited() {
		return false, nil
	}
	if s.proc != nil {
		s.restarts++
		m.log.Warn("echo server died; restarting", "pod", s.key, "why", s.proc.describeExit())
	}
	s.ports = podPorts(pod)
	argv := append([]string{"ip", "netns", "exec", s.netns}, m.opts.EchoCommand...)
	argv = append(argv, "--pod", pod.Name, "--node", m.opts.NodeName, "--ports", joinPorts(s.ports))
	key := s.key
	p, err := startEcho(argv, echoLogPath(m.opts.LogDir, pod.Namespace, pod.Name), func() { m.queue.Add(key) })
	if err != nil {
		return false, err
	}
	s.proc = p
	if err := waitServing(ctx, p, m.validAddrs(s), s.ports); err != nil {
		return false, err
	}
	// Kept to the second: that is what survives the round trip through
	// the API, and runningStatusCurrent compares with it.
	s.startedAt = metav1.NewTime(time.Now().Truncate(time.Second))
	return true, nil
}

// ensureNetwork gives the slot its addresses and a wired netns, building
// the netns again (and stopping what ran in it) if it vanished.
func (m *podManager) ensureNetwork(ctx context.Context, s *slot) error {
	if err := m.allocate(s); err != nil {
		return err
	}
	if s.netUp && !netnsExists(s.netns) {
		// Someone removed the netns under us: rebuild it from scratch.
		m.log.Warn("pod netns vanished; rebuilding", "pod", s.key, "netns", s.netns)
		s.proc.stop()
		s.netUp = false
		s.restarts++
	}
	if !s.netUp {
		s.proc.stop() // a process in a netns about to be replaced is useless
		s.proc = nil
		if err := setupPodNetwork(ctx, m.podNet(s)); err != nil {
			return err
		}
		s.netUp = true
	}
	return nil
}

// fail undoes a partial start and records the failure on the pod. The
// addresses and netns index stay reserved for the retry, so the pod keeps
// its identity across attempts.
func (m *podManager) fail(ctx context.Context, pod *corev1.Pod, s *slot, cause error, retryIn time.Duration) {
	s.proc.stop()
	s.proc = nil
	if s.netns != "" {
		if err := teardownPodNetwork(ctx, m.podNet(s)); err != nil {
			m.log.Warn("cleaning up after a failed start", "pod", s.key, "err", err)
		}
	}
	s.netUp = false
	m.log.Error("pod failed to start", "pod", s.key, "err", cause, "attempt", s.failures, "retryIn", retryIn)
	msg := cause.Error()
	if err := m.writeStatus(ctx, pod, func(p *corev1.Pod) (corev1.PodStatus, bool) {
		return failedStatus(p, m.opts.InternalIPs, s.restarts, reasonAgentError, msg, metav1.Now()), !failedStatusCurrent(p, msg)
	}); err != nil {
		m.log.Warn("cannot record the failure on the pod", "pod", s.key, "err", err)
	}
}

// teardown stops the pod's process within grace (its own when negative),
// removes its credentials, netns and veth and frees its addresses. If the
// netns cannot be removed the addresses stay reserved (and the slot stays,
// to be retried), or they could be handed out twice.
func (m *podManager) teardown(ctx context.Context, s *slot, grace time.Duration) error {
	if s.proc != nil {
		if grace < 0 {
			grace = s.proc.grace
		}
		s.proc.stopWithin(grace)
	}
	s.proc = nil
	if err := s.creds.remove(); err != nil {
		return fmt.Errorf("remove the pod's credentials: %w", err)
	}
	s.creds = nil
	if m.opts.StateDir != "" {
		if err := os.RemoveAll(m.volumesDir(s.uid)); err != nil {
			return fmt.Errorf("remove the pod's volumes: %w", err)
		}
	}
	if s.netns != "" {
		if err := teardownPodNetwork(ctx, m.podNet(s)); err != nil {
			return err
		}
	}
	s.netUp = false
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(s.key)
	if m.slots[s.key] == s {
		delete(m.slots, s.key)
	}
	return nil
}

// stopGraceFor returns how long the process of slot s gets between SIGTERM
// and SIGKILL when pod (nil once gone) is being deleted: the deletion's
// grace period if shorter than the process's own, which is what a
// `kubectl delete --grace-period` asks for. Negative means the process's
// own.
func stopGraceFor(pod *corev1.Pod, s *slot) time.Duration {
	if pod == nil || pod.UID != s.uid || pod.DeletionGracePeriodSeconds == nil || s.proc == nil {
		return -1
	}
	return min(time.Duration(*pod.DeletionGracePeriodSeconds)*time.Second, s.proc.grace)
}

// finalizeDeletion does the kubelet's last step for a terminating pod whose
// containers are gone: delete it for good with grace 0. The UID
// precondition makes sure a new pod of the same name is never hit.
func (m *podManager) finalizeDeletion(ctx context.Context, pod *corev1.Pod) error {
	if g := pod.DeletionGracePeriodSeconds; g != nil && *g == 0 {
		return nil // already asked; the pod only waits for its finalizers
	}
	err := m.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	switch {
	case err == nil:
		m.log.Info("pod deleted", "pod", pod.Namespace+"/"+pod.Name)
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Already gone, or the name now belongs to a new pod.
	default:
		return fmt.Errorf("delete pod: %w", err)
	}
	return nil
}

// writeStatus writes pods/status. build gets the pod to start from (the
// cached one first, a fresh one after a conflict) and says whether a write
// is still needed; a pod that disappeared, changed UID or started
// terminating in between is left alone.
func (m *podManager) writeStatus(ctx context.Context, cached *corev1.Pod, build func(*corev1.Pod) (corev1.PodStatus, bool)) error {
	pods := m.cs.CoreV1().Pods(cached.Namespace)
	pod := cached.DeepCopy()
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if fresh.UID != cached.UID || fresh.DeletionTimestamp != nil {
				return nil
			}
			pod = fresh
		}
		first = false
		st, needed := build(pod)
		if !needed {
			return nil
		}
		pod.Status = st
		_, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("update pod status: %w", err)
	}
	return nil
}

// allocate gives the slot a netns index and one address per pod CIDR,
// keeping whatever it already has (from an earlier attempt or adopted after
// a restart).
func (m *podManager) allocate(s *slot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.idx == 0 {
		idx := 1
		for m.usedIdx[idx] != "" {
			idx++
		}
		s.idx = idx
		s.netns = netnsName(m.opts.PodNetnsPrefix, idx)
		m.usedIdx[idx] = s.key
	}
	for i, cidr := range m.opts.PodCIDRs {
		if s.addrs[i].IsValid() {
			continue
		}
		a, err := lowestFreeHost(cidr, func(a netip.Addr) bool { return m.usedAddrs[a] != "" })
		if err != nil {
			return err
		}
		s.addrs[i] = a
		m.usedAddrs[a] = s.key
	}
	return nil
}

// releaseLocked frees everything owned by key. m.mu must be held.
func (m *podManager) releaseLocked(key string) {
	for a, owner := range m.usedAddrs {
		if owner == key {
			delete(m.usedAddrs, a)
		}
	}
	for i, owner := range m.usedIdx {
		if owner == key {
			delete(m.usedIdx, i)
		}
	}
}

func (m *podManager) validAddrs(s *slot) []netip.Addr {
	var out []netip.Addr
	for _, a := range s.addrs {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

func (m *podManager) podNet(s *slot) podNet {
	pn := podNet{Netns: s.netns, HostVeth: hostVethName(s.idx), Bridge: m.opts.Bridge}
	for i, cidr := range m.opts.PodCIDRs {
		if s.addrs[i].IsValid() {
			pn.Addrs = append(pn.Addrs, netip.PrefixFrom(s.addrs[i], cidr.Bits()))
			pn.Gateways = append(pn.Gateways, gatewayOf(cidr))
		}
	}
	return pn
}

func (m *podManager) view(s *slot) runningView {
	return runningView{
		hostIPs:   m.opts.InternalIPs,
		podIPs:    m.validAddrs(s),
		netns:     s.netns,
		startedAt: s.startedAt,
		restarts:  s.restarts,
	}
}

// netnsExists reports whether the named netns is still mounted; unsure
// answers count as yes so a transient error never triggers a rebuild.
func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return !errors.Is(err, os.ErrNotExist)
}

// stopAll stops every pod's process, in parallel so that shutdown takes
// stopGrace at most rather than stopGrace per pod. A Pharos pod's longer
// grace period is not waited for: the node is going away.
func (m *podManager) stopAll() {
	m.mu.Lock()
	procs := make([]*podProc, 0, len(m.slots))
	for _, s := range m.slots {
		if s.proc != nil {
			procs = append(procs, s.proc)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stopWithin(stopGrace) })
	}
	wg.Wait()
	if len(procs) > 0 {
		m.log.Info("pod processes stopped", "count", len(procs))
	}
}

// adopt rebuilds the agent's bookkeeping after a restart, before any pod is
// reconciled. A pod whose status names one of this node's netns (through
// its containerID "lab://<netns>") keeps that netns index and its status
// pod IPs, so it comes back with the same identity. Pod netns nobody claims
// are leftovers of pods that went away while the agent was down: they are
// removed, and if that fails their addresses stay reserved.
func (m *podManager) adopt(ctx context.Context) {
	prefix := m.opts.PodNetnsPrefix
	existing, err := listNetns(ctx, prefix)
	if err != nil {
		m.log.Warn("cannot list pod netns", "err", err)
	}
	pods, _ := m.lister.List(labels.Everything())
	slices.SortFunc(pods, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })

	m.mu.Lock()
	for _, pod := range pods {
		if terminal(pod) {
			continue
		}
		key := pod.Namespace + "/" + pod.Name
		s := &slot{key: key, uid: pod.UID, addrs: make([]netip.Addr, len(m.opts.PodCIDRs))}
		claimed := false
		if idx := netnsIndex(prefix, netnsFromStatus(pod)); idx > 0 && m.usedIdx[idx] == "" {
			s.idx, s.netns = idx, netnsName(prefix, idx)
			m.usedIdx[idx] = key
			claimed = true
		}
		for _, ip := range pod.Status.PodIPs {
			a, err := netip.ParseAddr(ip.IP)
			if err != nil {
				continue
			}
			for i, cidr := range m.opts.PodCIDRs {
				if cidr.Contains(a) && a != gatewayOf(cidr) && !s.addrs[i].IsValid() && m.usedAddrs[a] == "" {
					s.addrs[i] = a
					m.usedAddrs[a] = key
					claimed = true
				}
			}
		}
		if claimed {
			// Its server died with the previous agent and will be
			// started again: count that as a container restart.
			for _, cs := range pod.Status.ContainerStatuses {
				r := cs.RestartCount
				if cs.State.Running != nil {
					r++
				}
				s.restarts = max(s.restarts, r)
			}
			m.slots[key] = s
		}
	}
	adopted := len(m.slots)
	m.mu.Unlock()

	removed := 0
	for _, ns := range existing {
		idx := netnsIndex(prefix, ns)
		if idx == 0 {
			continue
		}
		m.mu.Lock()
		owned := m.usedIdx[idx] != ""
		m.mu.Unlock()
		if owned {
			continue
		}
		addrs, _ := netnsAddrs(ctx, ns)
		pn := podNet{Netns: ns, HostVeth: hostVethName(idx)}
		for _, a := range addrs {
			pn.Addrs = append(pn.Addrs, netip.PrefixFrom(a, a.BitLen()))
		}
		if err := teardownPodNetwork(ctx, pn); err != nil {
			m.log.Warn("cannot remove leftover pod netns; keeping its addresses reserved", "netns", ns, "err", err)
			m.mu.Lock()
			m.usedIdx[idx] = "orphan:" + ns
			for _, a := range addrs {
				m.usedAddrs[a] = "orphan:" + ns
			}
			m.mu.Unlock()
			continue
		}
		removed++
	}
	if adopted > 0 || removed > 0 {
		m.log.Info("state rebuilt after restart", "podsAdopted", adopted, "leftoverNetnsRemoved", removed)
	}
}

// netnsFromStatus returns the netns recorded in the pod's container IDs
// ("lab://<netns>"), or "".
func netnsFromStatus(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if ns, ok := strings.CutPrefix(cs.ContainerID, "lab://"); ok && ns != "" {
			return ns
		}
	}
	return ""
}
