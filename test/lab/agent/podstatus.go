package agent

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// reasonAgentError marks pods the agent could not start; kubectl shows it
// in the STATUS column through the container's waiting reason.
const reasonAgentError = "LabAgentError"

// maxMessage keeps error text (which may carry ip(8) or log output) from
// bloating the Pod object.
const maxMessage = 1024

// podPorts returns the TCP ports the pod's containers declare, in order and
// without duplicates, or 80 if they declare none: that is what the echo
// server must listen on so any Service targeting the pod finds it.
func podPorts(pod *corev1.Pod) []int {
	var ports []int
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			if port := int(p.ContainerPort); port > 0 && !slices.Contains(ports, port) {
				ports = append(ports, port)
			}
		}
	}
	if len(ports) == 0 {
		ports = []int{80}
	}
	return ports
}

// runningView is what the agent knows about a started pod, as the status
// builders need it.
type runningView struct {
	hostIPs   []netip.Addr
	podIPs    []netip.Addr // IPv4 first
	netns     string
	startedAt metav1.Time
	restarts  int32
}

// runningStatus returns the status of a pod whose echo server is serving:
// Running, Ready, with its addresses. It starts from the current status so
// fields owned by others (qosClass, which is immutable, among them) stay.
func runningStatus(pod *corev1.Pod, v runningView, now metav1.Time) corev1.PodStatus {
	st := nextStatus(pod, corev1.PodRunning, v.hostIPs, v.podIPs)
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		st.Conditions = setPodCondition(st.Conditions, corev1.PodCondition{
			Type: t, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation, LastTransitionTime: now,
		})
	}
	st.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:         c.Name,
			State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: v.startedAt}},
			Ready:        true,
			Started:      ptr.To(true),
			RestartCount: v.restarts,
			Image:        c.Image,
			ImageID:      "lab://" + c.Image,
			ContainerID:  "lab://" + v.netns,
		})
	}
	return st
}

// runningStatusCurrent reports whether the pod's status already says what
// runningStatus would, so the periodic resync writes nothing in the steady
// state.
func runningStatusCurrent(pod *corev1.Pod, v runningView) bool {
	st := &pod.Status
	if st.Phase != corev1.PodRunning || len(st.PodIPs) != len(v.podIPs) || len(st.HostIPs) != len(v.hostIPs) {
		return false
	}
	for i, a := range v.podIPs {
		if st.PodIPs[i].IP != a.String() {
			return false
		}
	}
	for i, a := range v.hostIPs {
		if st.HostIPs[i].IP != a.String() {
			return false
		}
	}
	if !podConditionIs(st.Conditions, corev1.PodReady, corev1.ConditionTrue) ||
		!podConditionIs(st.Conditions, corev1.ContainersReady, corev1.ConditionTrue) {
		return false
	}
	if len(st.ContainerStatuses) != len(pod.Spec.Containers) {
		return false
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready || cs.State.Running == nil || cs.ContainerID != "lab://"+v.netns ||
			cs.RestartCount != v.restarts || cs.State.Running.StartedAt.Unix() != v.startedAt.Unix() {
			return false
		}
	}
	return true
}

// failedStatus returns the status of a pod the agent could not start:
// Pending and not Ready, with the reason in the Ready condition and in each
// container's waiting state. Pod IPs are cleared because the agent tears the
// pod's network down before retrying.
func failedStatus(pod *corev1.Pod, hostIPs []netip.Addr, restarts int32, reason, msg string, now metav1.Time) corev1.PodStatus {
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	st := nextStatus(pod, corev1.PodPending, hostIPs, nil)
	st.Conditions = setPodCondition(st.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation, LastTransitionTime: now,
	})
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		st.Conditions = setPodCondition(st.Conditions, corev1.PodCondition{
			Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
			ObservedGeneration: pod.Generation, LastTransitionTime: now,
		})
	}
	st.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:         c.Name,
			State:        corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
			Started:      ptr.To(false),
			RestartCount: restarts,
			Image:        c.Image,
		})
	}
	return st
}

// failedStatusCurrent reports whether the pod already shows this failure,
// so a pod that keeps failing the same way is not rewritten on every retry.
func failedStatusCurrent(pod *corev1.Pod, msg string) bool {
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	if pod.Status.Phase != corev1.PodPending {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionFalse && c.Message == msg
		}
	}
	return false
}

func setHostIPs(st *corev1.PodStatus, hostIPs []netip.Addr) {
	st.HostIP, st.HostIPs = "", nil
	for _, a := range hostIPs {
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: a.String()})
	}
	if len(st.HostIPs) > 0 {
		st.HostIP = st.HostIPs[0].IP
	}
}

// nextStatus starts the status the agent writes from the pod's current one,
// so that fields owned by others (qosClass, which is immutable, among them)
// stay and conditions keep their transition times, with the phase and
// addresses set and a previous reason and message cleared.
func nextStatus(pod *corev1.Pod, phase corev1.PodPhase, hostIPs, podIPs []netip.Addr) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	st.Phase = phase
	st.Reason, st.Message = "", ""
	st.ObservedGeneration = pod.Generation
	setHostIPs(&st, hostIPs)
	setPodIPs(&st, podIPs)
	return st
}

func setPodIPs(st *corev1.PodStatus, podIPs []netip.Addr) {
	st.PodIP, st.PodIPs = "", nil
	for _, a := range podIPs {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: a.String()})
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
}

// setPodCondition replaces or appends c; the transition time only moves
// when the status changes, as consumers of conditions expect.
func setPodCondition(conds []corev1.PodCondition, c corev1.PodCondition) []corev1.PodCondition {
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

func podConditionIs(conds []corev1.PodCondition, t corev1.PodConditionType, s corev1.ConditionStatus) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == s
		}
	}
	return false
}
