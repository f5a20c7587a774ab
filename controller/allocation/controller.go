// Package allocation is the controller that assigns LoadBalancer addresses:
// it feeds Services and IPAddressPools to internal/allocator and writes the
// outcome to Service status, conditions and events, and pool status.
//
// Reconciles are level-triggered and idempotent. The allocator's state lives
// in memory and is rebuilt from the Services' status before the first
// reconcile, so a restart or a leader change moves no address.
package allocation

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"golang.org/x/time/rate"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/allocator"
	"github.com/pharos-lb/pharos/internal/config"
)

// The controller's permissions, each used by this package or its manager.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=pharos.io,resources=ipaddresspools,verbs=get;list;watch
// patch: the pool-in-use finalizer (protect.go).
// +kubebuilder:rbac:groups=pharos.io,resources=ipaddresspools,verbs=patch
// +kubebuilder:rbac:groups=pharos.io,resources=ipaddresspools/status,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=pharos-system
// K3s ServiceLB detection (Options.ServiceLBNamespace): a Role in that
// namespace only; metadata of the labelled DaemonSets is all that is read.
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=list;watch,namespace=kube-system

// Options configure the controller.
type Options struct {
	// LoadBalancerClass selects the Services handled: "" handles Services
	// without spec.loadBalancerClass; any other value handles only Services
	// of that class.
	LoadBalancerClass string
	// Workers is the number of Services reconciled in parallel. Status
	// writes dominate the cost, so this bounds the write concurrency.
	Workers int
	// PoolStatusInterval is the least time between two writes of one pool's
	// counts, so that a burst of assignments does not rewrite the pool on
	// every Service.
	PoolStatusInterval time.Duration
	// NormalEventsPerSecond bounds the rate of Normal IPAllocated events.
	// Under a backlog (an install, a restore) one event per Service would
	// double the apiserver's write load; the condition always records the
	// outcome, and Warning events are never limited.
	NormalEventsPerSecond float64
	// ServiceLBNamespace is where K3s ServiceLB creates its DaemonSets
	// ("kube-system" unless K3s sets lbNamespace). When it is set and
	// LoadBalancerClass is empty, the controller watches the DaemonSets
	// there that carry ServiceLB's labels, and leaves the status of a
	// Service that ServiceLB also handles to ServiceLB: it writes only its
	// IPAllocated condition (reason ServiceLBConflict) and keeps the
	// Service's address reserved, until the DaemonSet is gone. Empty
	// disables the detection, and needs no access to that namespace.
	ServiceLBNamespace string
	// Forwarding is the cluster's default forwarding mode, one of
	// v1beta1.ForwardingModes (the --forwarding flag, which the speakers
	// get too); a Service's v1beta1.AnnotationForwarding overrides it.
	// It decides the ipMode of the Service's ingress entries: Proxy for
	// v1beta1.ForwardingDirect, so that kube-proxy leaves the address to
	// the speakers' forwarding, else VIP. Empty means
	// v1beta1.ForwardingKubeProxy.
	Forwarding string
}

// Controller assigns addresses to Services.
type Controller struct {
	client   client.Client
	recorder recorder.EventRecorder
	opts     Options

	mu      sync.Mutex
	alloc   *allocator.Allocator
	result  config.Result
	poolsFP string
	loaded  bool
	pending map[types.NamespacedName]bool
	// waiting is the part of pending that holds no address, the
	// pharos_controller_pending_services gauge; setPendingLocked keeps it.
	waiting  map[types.NamespacedName]bool
	warned   map[string]bool
	lastPool map[string]time.Time
	// nsWarned holds the Services whose Namespace lookup failed and was
	// logged, so that the warning is logged once per Service, not on every
	// retry; a successful lookup clears the entry.
	nsWarned map[types.NamespacedName]bool
	// foreign holds the keys of the LoadBalancer Services of another class
	// whose addresses the allocator holds (holdForeignLocked): they keep
	// those addresses from our Services, but do not use our pools, so they
	// never hold a pool's deletion (protect.go).
	foreign map[string]bool

	// services and pools re-queue Services and pools of this controller.
	services requeuer
	pools    requeuer
	// nsRetry spaces the retries of a Service whose Namespace could not be
	// read.
	nsRetry      workqueue.TypedRateLimiter[types.NamespacedName]
	normalEvents *rate.Limiter

	// serviceLB reads ServiceLB's DaemonSets (metadata only) from a cache
	// restricted to Options.ServiceLBNamespace and ServiceLB's labels; nil
	// when detection is off.
	serviceLB cache.Cache
}

// New returns a controller that uses the manager's client and recorder.
func New(mgr ctrl.Manager, opts Options) *Controller {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.PoolStatusInterval <= 0 {
		opts.PoolStatusInterval = time.Second
	}
	if opts.NormalEventsPerSecond <= 0 {
		opts.NormalEventsPerSecond = 20
	}
	if opts.Forwarding == "" {
		opts.Forwarding = v1beta1.ForwardingKubeProxy
	}
	return newController(mgr.GetClient(), mgr.GetEventRecorder("pharos-controller"), opts)
}

// newController is New without a manager (opts already defaulted), for
// tests that drive the controller's methods directly.
func newController(cl client.Client, rec recorder.EventRecorder, opts Options) *Controller {
	return &Controller{
		client:       cl,
		recorder:     rec,
		opts:         opts,
		alloc:        allocator.New(),
		pending:      map[types.NamespacedName]bool{},
		waiting:      map[types.NamespacedName]bool{},
		warned:       map[string]bool{},
		lastPool:     map[string]time.Time{},
		nsWarned:     map[types.NamespacedName]bool{},
		foreign:      map[string]bool{},
		nsRetry:      workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](namespaceRetryBase, namespaceRetryMax),
		normalEvents: rate.NewLimiter(rate.Limit(opts.NormalEventsPerSecond), int(5*opts.NormalEventsPerSecond)),
	}
}

// The retries of a Service whose Namespace is not in the cache double from
// namespaceRetryBase up to namespaceRetryMax. The Namespace's own watch
// event normally re-queues the Service first (the cache is only behind);
// the retries cover a Namespace read that fails for another reason.
var (
	namespaceRetryBase = 250 * time.Millisecond
	namespaceRetryMax  = time.Minute
)

// conflictRetry is when a status write that lost a race is retried. The
// newer version's watch event normally re-queues the object sooner.
const conflictRetry = time.Second

// SetupWithManager registers the Service and IPAddressPool controllers.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		WatchesRawSource(c.services.source()).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(c.namespaceRequests)).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers})
	if c.opts.ServiceLBNamespace != "" && c.opts.LoadBalancerClass == "" {
		// ServiceLB ignores Services with a class, so with --lb-class set
		// there is nothing to detect and no cache to run.
		slb, err := cache.New(mgr.GetConfig(), cache.Options{
			HTTPClient:        mgr.GetHTTPClient(),
			Scheme:            mgr.GetScheme(),
			Mapper:            mgr.GetRESTMapper(),
			DefaultNamespaces: map[string]cache.Config{c.opts.ServiceLBNamespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		})
		if err != nil {
			return fmt.Errorf("creating the ServiceLB DaemonSet cache: %w", err)
		}
		// In the leader's group, with the controllers: without the Role in
		// that namespace, the watch below fails to sync within the
		// controller's CacheSyncTimeout and the manager exits, saying so.
		if err := mgr.Add(slb); err != nil {
			return err
		}
		c.serviceLB = slb
		b = b.WatchesRawSource(source.Kind[client.Object](slb, newDaemonSetMeta(), handler.EnqueueRequestsFromMapFunc(serviceLBRequests)))
	}
	if err := b.Complete(reconcile.Func(c.reconcileService)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("ipaddresspool").
		For(&v1beta1.IPAddressPool{}).
		WatchesRawSource(c.pools.source()).
		Complete(reconcile.Func(c.reconcilePool))
}

// handles reports whether the Service is one this controller serves.
func (c *Controller) handles(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	if c.opts.LoadBalancerClass == "" {
		return svc.Spec.LoadBalancerClass == nil
	}
	return svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass == c.opts.LoadBalancerClass
}

// ensureLoaded rebuilds the allocator from the pools and from the addresses
// that Services already hold, once, before anything new is assigned.
func (c *Controller) ensureLoaded(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return nil
	}
	logger := log.FromContext(ctx)
	if err := c.refreshPoolsLocked(ctx); err != nil {
		return err
	}
	var svcs corev1.ServiceList
	if err := c.client.List(ctx, &svcs); err != nil {
		return fmt.Errorf("listing Services: %w", err)
	}
	// Older Services win if two claim one address.
	sort.Slice(svcs.Items, func(i, j int) bool {
		a, b := &svcs.Items[i], &svcs.Items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	restored := 0
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if !c.handles(svc) {
			continue
		}
		ips, err := statusIPs(svc)
		if err != nil || len(ips) == 0 {
			continue
		}
		req, _, _ := buildRequest(svc, nil)
		// From the pool the Service's annotation names: an address that a
		// shrunk pool no longer includes is kept across the restart too.
		if err := c.alloc.RestoreFrom(req, svc.Annotations[v1beta1.AnnotationAllocatedFromPool], ips); err != nil {
			logger.Info("not restoring a Service's addresses; it will be assigned again", "service", req.Key, "reason", err.Error())
			continue
		}
		restored++
	}
	for i := range svcs.Items {
		if svc := &svcs.Items[i]; svc.Spec.Type == corev1.ServiceTypeLoadBalancer && !c.handles(svc) {
			c.holdForeignLocked(svc)
		}
	}
	logger.Info("allocator state rebuilt from Service status", "services", restored, "pools", len(c.result.Config.Pools))
	c.loaded = true
	return nil
}

// refreshPoolsLocked rebuilds the pool model when the pools changed and
// re-queues the Services that lost their addresses or wait for one.
func (c *Controller) refreshPoolsLocked(ctx context.Context) error {
	var list v1beta1.IPAddressPoolList
	if err := c.client.List(ctx, &list); err != nil {
		return fmt.Errorf("listing IPAddressPools: %w", err)
	}
	fp := make([]string, 0, len(list.Items))
	draining := map[string]bool{}
	for _, p := range list.Items {
		fp = append(fp, fmt.Sprintf("%s/%s/%d/%t", p.Name, p.UID, p.Generation, p.DeletionTimestamp != nil))
		draining[p.Name] = p.DeletionTimestamp != nil
	}
	sort.Strings(fp)
	key := strings.Join(fp, ",")
	if key == c.poolsFP && c.result.Config != nil {
		return nil
	}
	c.poolsFP = key
	c.result = config.Build(list.Items, c.result.Config)
	// A pool being deleted stays in the model while the finalizer holds
	// it (protect.go): its Services keep their addresses, and no one gets
	// a new one from it.
	var startsDraining []string
	for name, d := range draining {
		if d && !c.alloc.Draining(name) {
			startsDraining = append(startsDraining, name)
		}
	}
	c.alloc.SetDraining(draining)
	evicted := c.alloc.SetConfig(c.result.Config)
	// The Services of a pool that starts draining say so in their
	// condition (see reconcile): re-queue them.
	for _, name := range startsDraining {
		for _, k := range c.alloc.Users(name) {
			ns, n, _ := strings.Cut(k, "/")
			c.services.add(types.NamespacedName{Namespace: ns, Name: n})
		}
	}
	for _, k := range evicted {
		ns, name, _ := strings.Cut(k, "/")
		c.setPendingLocked(types.NamespacedName{Namespace: ns, Name: name}, true)
	}
	if len(evicted) > 0 {
		log.FromContext(ctx).Info("pools changed; Services whose addresses left every pool will be assigned again", "services", evicted)
	}
	if c.loaded {
		c.kickPendingLocked()
	}
	return nil
}

// setPendingLocked marks a Service as waiting for an address, or not, and
// updates the pending gauge: the pending Services that hold no address.
// Call it after the allocator has the Service's current assignment.
func (c *Controller) setPendingLocked(nn types.NamespacedName, pending bool) {
	if pending {
		c.pending[nn] = true
	} else {
		delete(c.pending, nn)
	}
	if asg, _ := c.alloc.Assigned(nn.Namespace + "/" + nn.Name); pending && len(asg.IPs) == 0 {
		c.waiting[nn] = true
	} else {
		delete(c.waiting, nn)
	}
	pendingServices.Set(float64(len(c.waiting)))
}

// kickPendingLocked re-queues every Service that waits for an address. It
// never blocks (see requeuer), so holding c.mu while it runs is safe.
func (c *Controller) kickPendingLocked() {
	for nn := range c.pending {
		c.services.add(nn)
	}
}

// namespaceRequests maps a Namespace to the Services in it that wait for
// an address: a Service's pools depend on its own Namespace's labels only,
// and a Service that holds addresses keeps them when those labels change.
// This includes the Services whose Namespace was not in the cache yet,
// which the Namespace's creation event thus re-queues.
func (c *Controller) namespaceRequests(_ context.Context, ns client.Object) []reconcile.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []reconcile.Request
	for nn := range c.pending {
		if nn.Namespace == ns.GetName() {
			out = append(out, reconcile.Request{NamespacedName: nn})
		}
	}
	return out
}

// poolChanged re-queues the named pools, whose counts changed. It never
// blocks, and no change is lost: a queued pool reconcile reads the counts
// when it runs.
func (c *Controller) poolChanged(names ...string) {
	for _, n := range names {
		if n != "" {
			c.pools.add(types.NamespacedName{Name: n})
		}
	}
}

func (c *Controller) reconcileService(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := c.ensureLoaded(ctx); err != nil {
		return reconcile.Result{}, err
	}
	key := req.Namespace + "/" + req.Name
	svc := &corev1.Service{}
	if err := c.client.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			c.release(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !c.handles(svc) {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
			c.release(req.NamespacedName)
			return c.clearStatus(ctx, svc)
		}
		// A LoadBalancer of another class: its class cannot change while it
		// stays a LoadBalancer, so it was never ours. Keep its addresses out
		// of our hands, so that two load balancers never announce one IP.
		c.holdForeign(svc)
		return reconcile.Result{}, nil
	}
	if daemonSets, err := c.serviceLBDaemonSets(ctx, req.NamespacedName); err != nil {
		return reconcile.Result{}, err
	} else if len(daemonSets) > 0 {
		return c.yieldToServiceLB(ctx, svc, daemonSets)
	}

	ns := &corev1.Namespace{}
	if err := c.client.Get(ctx, types.NamespacedName{Name: svc.Namespace}, ns); err != nil {
		return c.namespaceUnknown(ctx, req.NamespacedName, err), nil
	}
	c.namespaceKnown(req.NamespacedName)
	r, aliases, reqErr := buildRequest(svc, ns.Labels)
	c.warnAliases(svc, aliases)
	mode, forwardingProblem := c.forwardingOf(svc)

	c.mu.Lock()
	before, _ := c.alloc.Assigned(key)
	var asg allocator.Assignment
	cond := metav1.Condition{Type: v1beta1.ConditionIPAllocated, ObservedGeneration: svc.Generation}
	if reqErr != nil {
		asg, _ = c.alloc.Assigned(key)
		cond.Status, cond.Reason = metav1.ConditionFalse, string(allocator.InvalidRequest)
		cond.Message = reqErr.Error()
		if len(asg.IPs) > 0 {
			cond.Message += fmt.Sprintf("; keeping %s until the request is fixed", joinIPs(asg.IPs))
		}
	} else {
		var err error
		asg, err = c.alloc.Assign(r)
		if err != nil {
			cond.Status = metav1.ConditionFalse
			cond.Reason, cond.Message = failureReason(err)
		} else {
			cond.Status, cond.Reason = metav1.ConditionTrue, string(allocator.Allocated)
			cond.Message = fmt.Sprintf("assigned %s from IPAddressPool %q", joinIPs(asg.IPs), asg.Pool)
			if c.alloc.Draining(asg.Pool) {
				// The Service is what holds the pool in Terminating: say
				// so where its owner looks, with the way out.
				cond.Message += fmt.Sprintf("; the pool is being deleted and kept only for the Services that hold its addresses: move this one with the annotation %s, or delete it, to let the pool go", v1beta1.AnnotationAddressPool)
			}
		}
	}
	c.setPendingLocked(req.NamespacedName, cond.Status != metav1.ConditionTrue)
	if cond.Status == metav1.ConditionTrue {
		countAllocations(asg.Pool, before.IPs, asg.IPs)
	}
	if freed(before.IPs, asg.IPs) {
		c.kickPendingLocked()
	}
	c.mu.Unlock()
	if before.Pool != asg.Pool || len(before.IPs) != len(asg.IPs) {
		c.poolChanged(before.Pool, asg.Pool)
	}
	if cond.Status == metav1.ConditionTrue && (before.Pool != asg.Pool || !sameIPs(before.IPs, asg.IPs)) {
		// Before the new addresses show, so that a deletion of the pool
		// right after cannot take them away (protect.go).
		c.protectForUse(ctx, asg.Pool)
	}
	if forwardingProblem != "" {
		// On the condition whatever its status, so that the problem shows
		// where users look, and stays recorded across restarts (the
		// Warning event is written only when this text is new).
		cond.Message += "; " + forwardingProblem
	}
	return c.writeStatus(ctx, svc, asg, cond, mode, forwardingProblem)
}

// forwardingOf returns the Service's forwarding mode (the same reading as
// the speakers', v1beta1.ForwardingOf, so that the ipMode written matches
// what they do), and, when its annotation names no mode, the problem to
// report. The Service keeps its addresses either way: the mode only
// decides who carries the traffic, and the cluster default is what the
// speakers apply to it.
func (c *Controller) forwardingOf(svc *corev1.Service) (mode, problem string) {
	mode, ok := v1beta1.ForwardingOf(svc.Annotations, c.opts.Forwarding)
	if !ok {
		problem = fmt.Sprintf("annotation %s is %q, which is no forwarding mode: using the cluster default %q; set it to %s, or remove it",
			v1beta1.AnnotationForwarding, svc.Annotations[v1beta1.AnnotationForwarding], c.opts.Forwarding, quotedList(v1beta1.ForwardingModes))
	}
	return mode, problem
}

// quotedList returns the values quoted and joined by "or".
func quotedList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, " or ")
}

// ipModeOf returns the ipMode of the ingress entries of a Service with the
// given forwarding mode. Direct and nodeport forwarding need Proxy: with VIP,
// kube-proxy, where it runs, short-circuits the packets that pods send to
// the address straight to the backends, around the speakers' forwarding
// (and so around what it keeps, such as the client's address).
// kube-proxy's mode gets VIP, written and not left nil, as
// the apiserver defaults nil to VIP anyway: writing nil would make every
// reconcile see a difference and write the status again.
func ipModeOf(mode string) corev1.LoadBalancerIPMode {
	if mode == v1beta1.ForwardingDirect || mode == v1beta1.ForwardingNodePort {
		return corev1.LoadBalancerIPModeProxy
	}
	return corev1.LoadBalancerIPModeVIP
}

// failureReason returns the IPAllocated reason and message for an error
// returned by the allocator.
func failureReason(err error) (reason, message string) {
	var e *allocator.Error
	if errors.As(err, &e) && e != nil {
		return string(e.Reason), e.Message
	}
	// %v, not err.Error(): fmt survives an Error method that panics, as a
	// nil *allocator.Error's does.
	return v1beta1.ReasonInternalError, fmt.Sprintf("unexpected allocator error: %v", err)
}

// namespaceUnknown handles a Service whose Namespace could not be read. The
// Namespace's labels decide which pools may serve the Service, and a
// Service keeps the pool it is first given, so assigning without them
// could leave it in a fallback pool for good. Usually the cache is just
// behind the apiserver (NotFound), so the Service waits, without touching
// its status: it is marked pending, so the Namespace's watch event
// re-queues it, and it is retried with backoff in case no event comes.
func (c *Controller) namespaceUnknown(ctx context.Context, nn types.NamespacedName, err error) reconcile.Result {
	namespaceLookupFailures.Inc()
	c.mu.Lock()
	c.setPendingLocked(nn, true)
	first := !c.nsWarned[nn]
	c.nsWarned[nn] = true
	c.mu.Unlock()
	if first {
		// logr has no warning level; V(0), always shown, is the closest,
		// and the prefix is controller-runtime's own convention. The
		// reconcile's logger already has the key "namespace", the same.
		log.FromContext(ctx).Info("Warning: cannot read the Service's Namespace, whose labels select its pools; the Service waits for it, and is retried",
			"service", nn.String(), "error", err.Error())
	}
	return reconcile.Result{RequeueAfter: c.nsRetry.When(nn)}
}

// namespaceKnown ends the wait of namespaceUnknown: the backoff restarts
// and a new failure is logged again.
func (c *Controller) namespaceKnown(nn types.NamespacedName) {
	c.nsRetry.Forget(nn)
	c.mu.Lock()
	delete(c.nsWarned, nn)
	c.mu.Unlock()
}

func freed(before, after []netip.Addr) bool {
	for _, b := range before {
		kept := false
		for _, a := range after {
			kept = kept || a == b
		}
		if !kept {
			return true
		}
	}
	return false
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// holdForeign marks the addresses that a LoadBalancer Service of another
// class shows in its status as taken, for as long as it shows them.
func (c *Controller) holdForeign(svc *corev1.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before, _ := c.alloc.Assigned(svc.Namespace + "/" + svc.Name)
	c.holdForeignLocked(svc)
	after, _ := c.alloc.Assigned(svc.Namespace + "/" + svc.Name)
	if freed(before.IPs, after.IPs) {
		c.kickPendingLocked()
	}
	if before.Pool != after.Pool || len(before.IPs) != len(after.IPs) {
		c.poolChanged(before.Pool, after.Pool)
	}
}

func (c *Controller) holdForeignLocked(svc *corev1.Service) {
	key := svc.Namespace + "/" + svc.Name
	ips, _ := statusIPs(svc)
	if before, ok := c.alloc.Assigned(key); ok && sameIPs(before.IPs, ips) {
		return
	}
	c.alloc.Release(key)
	delete(c.foreign, key)
	if len(ips) > 0 {
		req, _, _ := buildRequest(svc, nil)
		// Addresses outside our pools, or already ours, are not held.
		if c.alloc.Restore(req, ips) == nil {
			c.foreign[key] = true
		}
	}
}

func sameIPs(a, b []netip.Addr) bool {
	return len(a) == len(b) && !freed(a, b)
}

func (c *Controller) release(nn types.NamespacedName) {
	c.nsRetry.Forget(nn)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setPendingLocked(nn, false)
	delete(c.nsWarned, nn)
	delete(c.foreign, nn.Namespace+"/"+nn.Name)
	asg, ok := c.alloc.Assigned(nn.Namespace + "/" + nn.Name)
	if !ok {
		return
	}
	c.alloc.Release(nn.Namespace + "/" + nn.Name)
	c.kickPendingLocked()
	c.poolChanged(asg.Pool)
}

// serviceLBDaemonSets returns the ServiceLB DaemonSets that handle the
// Service; none when detection is off.
func (c *Controller) serviceLBDaemonSets(ctx context.Context, nn types.NamespacedName) ([]string, error) {
	if c.serviceLB == nil {
		return nil, nil
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("DaemonSetList"))
	// Metadata of the few DaemonSets of that namespace; K3s and RKE2 label
	// them differently, so they are filtered here, not by a selector.
	if err := c.serviceLB.List(ctx, list, client.InNamespace(c.opts.ServiceLBNamespace)); err != nil {
		return nil, fmt.Errorf("listing K3s ServiceLB DaemonSets: %w", err)
	}
	return activeServiceLB(list.Items, nn), nil
}

// yieldToServiceLB handles a Service that K3s ServiceLB also handles. It
// assigns nothing new and releases nothing: an address already assigned
// stays reserved, since it may still show in the status, and the Service
// takes it back when ServiceLB goes away. It writes only the condition,
// never the ingress or the pool annotation, so there is no tug-of-war.
func (c *Controller) yieldToServiceLB(ctx context.Context, svc *corev1.Service, daemonSets []string) (reconcile.Result, error) {
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	c.mu.Lock()
	// The DaemonSet's watch, not a pool change, ends the conflict.
	c.setPendingLocked(nn, false)
	asg, _ := c.alloc.Assigned(nn.Namespace + "/" + nn.Name)
	c.mu.Unlock()
	cond := serviceLBCondition(daemonSets, asg.IPs, svc.Generation)
	desired := svc.DeepCopy()
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	// The update carries the resourceVersion read: if ServiceLB wrote the
	// ingress since, it fails with a conflict instead of undoing that.
	res, _, err := c.update(ctx, svc, desired, cond)
	return res, err
}

// writeStatus writes the Service's addresses, with the ipMode of its
// forwarding mode, its pool annotation and condition in one update, and
// records an event when the outcome changed. The comparison with the
// current status includes the ipMode, so a changed forwarding annotation,
// or --forwarding across a restart, rewrites the entries in place: the
// addresses come from the allocator, which keeps them. forwardingProblem,
// if set, is the Service's invalid forwarding annotation, reported by a
// Warning event when the condition did not already say so.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, asg allocator.Assignment, cond metav1.Condition, mode, forwardingProblem string) (reconcile.Result, error) {
	desired := svc.DeepCopy()
	desired.Status.LoadBalancer.Ingress = nil
	for _, ip := range asg.IPs {
		// One value per entry: the entries must not share a pointer.
		ipMode := ipModeOf(mode)
		desired.Status.LoadBalancer.Ingress = append(desired.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &ipMode})
	}
	if asg.Pool != "" {
		if desired.Annotations == nil {
			desired.Annotations = map[string]string{}
		}
		desired.Annotations[v1beta1.AnnotationAllocatedFromPool] = asg.Pool
	} else {
		delete(desired.Annotations, v1beta1.AnnotationAllocatedFromPool)
	}
	old := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionIPAllocated)
	reported := old != nil && forwardingProblem != "" && strings.Contains(old.Message, forwardingProblem)
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	res, written, err := c.update(ctx, svc, desired, cond)
	if written && forwardingProblem != "" && !reported {
		log.FromContext(ctx).Info("Service has an invalid forwarding annotation", "service", svc.Namespace+"/"+svc.Name, "message", forwardingProblem)
		c.recorder.Eventf(desired, nil, corev1.EventTypeWarning, v1beta1.ReasonInvalidForwarding, "Allocate", "%s", forwardingProblem)
	}
	return res, err
}

// update writes desired, a changed copy of svc, through the status
// subresource when it differs, and records an event when the outcome
// (the condition's status, reason or message) changed: once per change,
// however often the Service is reconciled. written says whether it wrote.
func (c *Controller) update(ctx context.Context, svc, desired *corev1.Service, cond metav1.Condition) (res reconcile.Result, written bool, err error) {
	old := meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionIPAllocated)
	if equality.Semantic.DeepEqual(desired.Status, svc.Status) && equality.Semantic.DeepEqual(desired.Annotations, svc.Annotations) {
		return reconcile.Result{}, false, nil
	}
	if err := c.client.Status().Update(ctx, desired); err != nil {
		if res, ok := lostRace(err); ok {
			return res, false, nil
		}
		return reconcile.Result{}, false, fmt.Errorf("writing status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	countRefusal(old, cond)
	// One log line per decision change (not per reconcile): the condition
	// names the addresses and the pool, so a Service that gets or changes
	// its addresses changes it.
	if old == nil || old.Reason != cond.Reason || old.Message != cond.Message || old.Status != cond.Status {
		if cond.Status == metav1.ConditionTrue {
			log.FromContext(ctx).Info("Service allocated", "service", svc.Namespace+"/"+svc.Name, "message", cond.Message)
			if c.normalEvents.Allow() {
				c.recorder.Eventf(desired, nil, corev1.EventTypeNormal, "IPAllocated", "Allocate", "%s", cond.Message)
			}
		} else {
			log.FromContext(ctx).Info("Service is not allocated", "service", svc.Namespace+"/"+svc.Name, "reason", cond.Reason, "message", cond.Message)
			c.recorder.Eventf(desired, nil, corev1.EventTypeWarning, cond.Reason, "Allocate", "%s", cond.Message)
		}
	}
	return reconcile.Result{}, true, nil
}

// clearStatus removes what this controller wrote on a Service it no longer
// handles. It touches nothing on Services it never served, so it cannot
// fight another load-balancer controller.
func (c *Controller) clearStatus(ctx context.Context, svc *corev1.Service) (reconcile.Result, error) {
	_, ours := svc.Annotations[v1beta1.AnnotationAllocatedFromPool]
	if !ours && meta.FindStatusCondition(svc.Status.Conditions, v1beta1.ConditionIPAllocated) == nil {
		return reconcile.Result{}, nil
	}
	desired := svc.DeepCopy()
	delete(desired.Annotations, v1beta1.AnnotationAllocatedFromPool)
	meta.RemoveStatusCondition(&desired.Status.Conditions, v1beta1.ConditionIPAllocated)
	if ours {
		desired.Status.LoadBalancer.Ingress = nil
	}
	if err := c.client.Status().Update(ctx, desired); err != nil {
		if res, ok := lostRace(err); ok {
			return res, nil
		}
		return reconcile.Result{}, err
	}
	if svc.DeletionTimestamp == nil {
		c.recorder.Eventf(desired, nil, corev1.EventTypeNormal, "IPReleased", "Release",
			"released the addresses: the Service is no longer a LoadBalancer of class %q", c.classDescription())
	}
	return reconcile.Result{}, nil
}

// lostRace reports whether a failed status write lost a race with another
// writer: the object changed (conflict) or was deleted (not found) since it
// was read. That is no error, and returning one would log it as such. The
// watch brings the newer version or the deletion, to be reconciled then; a
// conflict is also retried after conflictRetry, not at once, since the
// cache has not caught up yet.
func lostRace(err error) (reconcile.Result, bool) {
	switch {
	case apierrors.IsConflict(err):
		return reconcile.Result{RequeueAfter: conflictRetry}, true
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, true
	}
	return reconcile.Result{}, false
}

func (c *Controller) classDescription() string {
	if c.opts.LoadBalancerClass == "" {
		return "<none>"
	}
	return c.opts.LoadBalancerClass
}

// warnAliases records one warning per Service and MetalLB annotation used.
func (c *Controller) warnAliases(svc *corev1.Service, aliases map[string]string) {
	for alias, key := range aliases {
		id := string(svc.UID) + "/" + alias
		c.mu.Lock()
		done := c.warned[id]
		c.warned[id] = true
		c.mu.Unlock()
		if !done {
			c.recorder.Eventf(svc, nil, corev1.EventTypeWarning, "DeprecatedAnnotation", "Allocate",
				"annotation %s is accepted as an alias; rename it to %s", alias, key)
		}
	}
}

func (c *Controller) reconcilePool(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := c.ensureLoaded(ctx); err != nil {
		return reconcile.Result{}, err
	}
	c.mu.Lock()
	if err := c.refreshPoolsLocked(ctx); err != nil {
		c.mu.Unlock()
		return reconcile.Result{}, err
	}
	stats, _ := c.alloc.Stats(req.Name)
	errs := c.result.Errors[req.Name]
	stale := c.result.Stale[req.Name]
	last := c.lastPool[req.Name]
	users := c.poolUsersLocked(req.Name)
	outside := c.poolOutsideLocked(req.Name)
	c.mu.Unlock()

	pool := &v1beta1.IPAddressPool{}
	if err := c.client.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			deletePoolMetrics(req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if gone, err := c.protect(ctx, pool, users); err != nil {
		if res, ok := lostRace(err); ok {
			return res, nil
		}
		return reconcile.Result{}, err
	} else if gone {
		return reconcile.Result{}, nil
	}
	// The gauges follow every count, even when the status write waits.
	setPoolMetrics(req.Name, stats)
	desired := pool.DeepCopy()
	desired.Status.AssignedIPv4, desired.Status.AssignedIPv6 = stats.AssignedIPv4, stats.AssignedIPv6
	desired.Status.AvailableIPv4, desired.Status.AvailableIPv6 = stats.AvailableIPv4, stats.AvailableIPv6
	desired.Status.ObservedGeneration = pool.Generation
	cond := metav1.Condition{Type: v1beta1.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", Message: "the pool is in use", ObservedGeneration: pool.Generation}
	if len(errs) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, "InvalidSpec"
		cond.Message = errs.ToAggregate().Error()
		if stale {
			cond.Message += "; the pool keeps serving with its last valid spec until this is fixed"
		} else {
			cond.Message += "; the pool is not used until this is fixed"
		}
	}
	old := meta.FindStatusCondition(pool.Status.Conditions, v1beta1.ConditionValid)
	meta.SetStatusCondition(&desired.Status.Conditions, cond)
	draining := drainingCondition(pool, users, outside)
	drainChanged, drainEvent := setDraining(&desired.Status.Conditions, draining)
	if equality.Semantic.DeepEqual(desired.Status, pool.Status) {
		return reconcile.Result{}, nil
	}
	condChanged := old == nil || old.Status != cond.Status || old.Message != cond.Message
	if wait := c.opts.PoolStatusInterval - time.Since(last); !condChanged && !drainChanged && wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	if err := c.client.Status().Update(ctx, desired); err != nil {
		if res, ok := lostRace(err); ok {
			return res, nil
		}
		return reconcile.Result{}, fmt.Errorf("writing status of IPAddressPool %s: %w", pool.Name, err)
	}
	c.mu.Lock()
	c.lastPool[req.Name] = time.Now()
	c.mu.Unlock()
	if drainEvent {
		log.FromContext(ctx).Info("IPAddressPool keeps addresses for Services", "pool", pool.Name, "reason", draining.Reason, "message", draining.Message)
		c.recorder.Eventf(desired, nil, corev1.EventTypeWarning, draining.Reason, "Protect", "%s", draining.Message)
	}
	if condChanged && cond.Status == metav1.ConditionFalse {
		log.FromContext(ctx).Info("IPAddressPool is invalid", "pool", pool.Name, "message", cond.Message)
		c.recorder.Eventf(desired, nil, corev1.EventTypeWarning, "InvalidSpec", "Validate", "%s", cond.Message)
	} else if condChanged && old != nil && old.Status == metav1.ConditionFalse {
		c.recorder.Eventf(desired, nil, corev1.EventTypeNormal, "Valid", "Validate", "the pool is valid again and in use")
	}
	return reconcile.Result{}, nil
}
