package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	// KubeletVersion is the version the agent reports in nodeInfo; it
	// matches the lab's control plane so version-skew checks stay quiet.
	KubeletVersion = "v1.37.2"

	// heartbeatInterval is how often the Lease is renewed and the Ready
	// condition's heartbeat refreshed; the kubelet's defaults are 10 s for
	// both, well inside the controller manager's 50 s grace period.
	heartbeatInterval = 10 * time.Second
	leaseDuration     = int32(40)
	leaseNamespace    = "kube-node-lease"
	kubeletPort       = int32(10250)

	// taintNotReady is added by the node lifecycle controller while a node
	// is not Ready, with NoSchedule (and NoExecute after a while).
	taintNotReady = "node.kubernetes.io/not-ready"
)

// nodeAgent owns the Node object and its Lease.
type nodeAgent struct {
	cs   kubernetes.Interface
	opts Options
	log  *slog.Logger

	uid        types.UID    // of the registered Node, for the Lease's owner reference
	readySince time.Time    // first successful Ready post of this run
	last       *corev1.Node // as returned by the last status post
}

// desiredNode returns the Node's metadata and spec as the agent registers it.
func desiredNode(opts Options) *corev1.Node {
	cidrs := make([]string, len(opts.PodCIDRs))
	for i, p := range opts.PodCIDRs {
		cidrs[i] = p.String()
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: opts.NodeName,
			Labels: map[string]string{
				corev1.LabelHostname:   opts.NodeName,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: runtime.GOARCH,
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: cidrs[0], PodCIDRs: cidrs},
	}
}

// desiredStatus returns the node status to post, starting from old so that
// fields others own survive and a condition's lastTransitionTime only moves
// when its status does.
func desiredStatus(opts Options, old corev1.NodeStatus, now metav1.Time) corev1.NodeStatus {
	st := *old.DeepCopy()
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	st.Capacity = res
	st.Allocatable = res.DeepCopy()

	st.Addresses = nil
	for _, a := range opts.InternalIPs {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: opts.NodeName})

	id := sha256.Sum256([]byte("pharos-lab/" + opts.NodeName))
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID:               hex.EncodeToString(id[:16]),
		SystemUUID:              hex.EncodeToString(id[16:]),
		BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           readTrimmed("/proc/sys/kernel/osrelease"),
		OSImage:                 "pharos lab (network namespace)",
		ContainerRuntimeVersion: "lab://1.0",
		KubeletVersion:          KubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            runtime.GOARCH,
	}
	st.DaemonEndpoints.KubeletEndpoint.Port = kubeletPort

	for _, c := range []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "lab node agent is posting ready status"},
	} {
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		st.Conditions = setNodeCondition(st.Conditions, c)
	}
	return st
}

// setNodeCondition replaces or appends c, keeping the old transition time
// when the status did not change.
func setNodeCondition(conds []corev1.NodeCondition, c corev1.NodeCondition) []corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == c.Type {
			if conds[i].Status == c.Status && !conds[i].LastTransitionTime.IsZero() {
				c.LastTransitionTime = conds[i].LastTransitionTime
			}
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// register creates or updates the Node and posts its status, retrying with
// backoff until it works (the apiserver may still be starting) or ctx ends.
func (n *nodeAgent) register(ctx context.Context) error {
	delay := time.Second
	for {
		err := n.registerOnce(ctx)
		if err == nil {
			n.log.Info("node registered and Ready posted", "uid", n.uid)
			return nil
		}
		n.log.Warn("node registration failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (n *nodeAgent) registerOnce(ctx context.Context) error {
	nodes := n.cs.CoreV1().Nodes()
	want := desiredNode(n.opts)
	cur, err := nodes.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// Status is sent with the create too (the apiserver keeps it), so
		// the node is Ready from its very first version; postStatus below
		// then settles it either way.
		want.Status = desiredStatus(n.opts, corev1.NodeStatus{}, metav1.Now())
		created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node: %w", err)
		}
		n.uid = created.UID
	case err != nil:
		return fmt.Errorf("get node: %w", err)
	default:
		if err := n.updateNodeSpec(ctx, cur); err != nil {
			return err
		}
	}
	return n.postStatus(ctx)
}

// updateNodeSpec brings an existing Node's labels and pod CIDRs in line.
// spec.podCIDRs can only go from empty to set, so a node that already has
// different ones keeps them and the mismatch is logged.
func (n *nodeAgent) updateNodeSpec(ctx context.Context, cur *corev1.Node) error {
	want := desiredNode(n.opts)
	nodes := n.cs.CoreV1().Nodes()
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			fresh, err := nodes.Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur = fresh
		}
		first = false
		node := cur.DeepCopy()
		n.uid = node.UID
		changed := false
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			if node.Labels[k] != v {
				node.Labels[k] = v
				changed = true
			}
		}
		if len(node.Spec.PodCIDRs) == 0 {
			node.Spec.PodCIDR, node.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
			changed = true
		} else if !slices.Equal(node.Spec.PodCIDRs, want.Spec.PodCIDRs) {
			n.log.Error("node already has other pod CIDRs, which cannot be changed; pods get addresses from the configured ones",
				"have", node.Spec.PodCIDRs, "want", want.Spec.PodCIDRs)
		}
		if !changed {
			return nil
		}
		if _, err := nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node: %w", err)
		}
		return nil
	})
}

// postStatus writes the full node status through nodes/status, which also
// refreshes every condition's lastHeartbeatTime.
func (n *nodeAgent) postStatus(ctx context.Context) error {
	nodes := n.cs.CoreV1().Nodes()
	var updated *corev1.Node
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, n.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = desiredStatus(n.opts, cur.Status, metav1.Now())
		updated, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	n.uid = updated.UID
	n.last = updated
	if n.readySince.IsZero() {
		n.readySince = time.Now()
	}
	return nil
}

// heartbeat renews the Lease and the Ready condition every 10 s until ctx
// ends. Failures are logged and simply tried again on the next tick: missing
// a few beats is harmless within the 50 s grace period.
func (n *nodeAgent) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		if err := n.renewLease(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("lease renewal failed", "err", err)
		}
		if err := n.postStatus(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("node status heartbeat failed", "err", err)
		}
		if err := n.dropStaleNotReadyTaint(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("removing stale not-ready taint failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renewLease creates or renews kube-node-lease/<node>, which is what the
// node lifecycle controller mainly watches for liveness.
func (n *nodeAgent) renewLease(ctx context.Context) error {
	leases := n.cs.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, n.opts.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.opts.NodeName, Namespace: leaseNamespace}}
			if n.uid != "" {
				// Like the kubelet's: the Lease goes away with its Node.
				l.OwnerReferences = []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: n.opts.NodeName, UID: n.uid,
				}}
			}
			l.Spec = leaseSpec(n.opts.NodeName, now)
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		l.Spec = leaseSpec(n.opts.NodeName, now)
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
}

func leaseSpec(holder string, now metav1.MicroTime) coordinationv1.LeaseSpec {
	return coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(holder),
		LeaseDurationSeconds: ptr.To(leaseDuration),
		RenewTime:            &now,
	}
}

// dropStaleNotReadyTaint removes node.kubernetes.io/not-ready if it is
// still there two heartbeats after Ready was first posted. Normally the
// node lifecycle controller removes it within seconds of seeing Ready, and
// the agent leaves it alone until then so the two never fight; this is only
// a safety net for a taint that was added while the node was registering and
// then somehow missed.
func (n *nodeAgent) dropStaleNotReadyTaint(ctx context.Context) error {
	if n.readySince.IsZero() || time.Since(n.readySince) < 2*heartbeatInterval {
		return nil
	}
	if n.last == nil || !hasTaint(n.last, taintNotReady) {
		return nil // the common case: no extra request per heartbeat
	}
	nodes := n.cs.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, n.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(node) {
			return nil // the controller is right to taint a node that is not Ready
		}
		kept := node.Spec.Taints[:0:0]
		for _, t := range node.Spec.Taints {
			if t.Key != taintNotReady {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		n.log.Info("removing stale not-ready taint", "taints", node.Spec.Taints)
		node.Spec.Taints = kept
		_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

func hasTaint(node *corev1.Node, key string) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
