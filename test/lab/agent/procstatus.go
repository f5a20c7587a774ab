package agent

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// procView is what the agent knows about a Pharos pod's one container, as
// processStatus needs it. Times are kept to the second, which is what
// survives the round trip through the API.
type procView struct {
	hostIPs     []netip.Addr
	podIPs      []netip.Addr // IPv4 first; the node's for hostNetwork pods
	containerID string
	restarts    int32
	ready       bool
	// state is the container's current state: Running, Waiting (in
	// CrashLoopBackOff between two runs) or Terminated (the run that
	// ended the pod, whose phase is then Succeeded or Failed).
	state     corev1.ContainerState
	lastState corev1.ContainerState // the previous run's end, if any
}

// phase is the pod phase the view implies.
func (v procView) phase() corev1.PodPhase {
	if t := v.state.Terminated; t != nil {
		if t.ExitCode == 0 {
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	}
	return corev1.PodRunning
}

// processStatus returns the status of a Pharos pod as the kubelet would
// write it. Like runningStatus it starts from the current status, so fields
// owned by others stay and conditions keep their transition times.
func processStatus(pod *corev1.Pod, v procView, now metav1.Time) corev1.PodStatus {
	// A finished pod keeps its addresses in its status, as with the
	// kubelet; nothing routes to a pod that is not Running.
	st := nextStatus(pod, v.phase(), v.hostIPs, v.podIPs)
	if st.StartTime == nil {
		st.StartTime = &now
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation, LastTransitionTime: now}
		if !ok {
			c.Status, c.Reason = corev1.ConditionFalse, reason
		}
		st.Conditions = setPodCondition(st.Conditions, c)
	}
	terminal := v.state.Terminated != nil
	notReady := "ContainersNotReady"
	if terminal {
		notReady = "PodCompleted"
	}
	cond(corev1.PodScheduled, true, "")
	// A finished pod's sandbox (here: its netns) is gone.
	cond(corev1.PodReadyToStartContainers, !terminal, "")
	cond(corev1.PodInitialized, true, "")
	cond(corev1.ContainersReady, v.ready && !terminal, notReady)
	cond(corev1.PodReady, v.ready && !terminal, notReady)

	c := pod.Spec.Containers[0]
	state := *v.state.DeepCopy()
	if state.Terminated != nil {
		state.Terminated.ContainerID = v.containerID
	}
	last := *v.lastState.DeepCopy()
	if last.Terminated != nil {
		last.Terminated.ContainerID = v.containerID
	}
	st.ContainerStatuses = []corev1.ContainerStatus{{
		Name:                 c.Name,
		State:                state,
		LastTerminationState: last,
		Ready:                v.ready && state.Running != nil,
		Started:              ptr.To(state.Running != nil),
		RestartCount:         v.restarts,
		Image:                c.Image,
		ImageID:              "lab://" + c.Image,
		ContainerID:          v.containerID,
	}}
	return st
}

// processStatusCurrent reports whether the pod's status already says what
// processStatus would, so the periodic resync writes nothing in the steady
// state. Conditions whose status holds keep their transition time, so the
// comparison does not depend on the clock.
func processStatusCurrent(pod *corev1.Pod, v procView) bool {
	return equality.Semantic.DeepEqual(pod.Status, processStatus(pod, v, metav1.Now()))
}

// terminatedState describes a run of the process that has ended, with the
// end of its log as the message (as terminationMessagePolicy
// FallbackToLogsOnError would show it, for every exit).
func terminatedState(p *podProc) *corev1.ContainerStateTerminated {
	code := p.exitCode()
	t := &corev1.ContainerStateTerminated{
		ExitCode:   code,
		Reason:     "Completed",
		Message:    logTailRaw(p.logPath, maxMessage),
		StartedAt:  metav1.NewTime(p.started.Truncate(time.Second)),
		FinishedAt: metav1.NewTime(p.finished.Truncate(time.Second)),
	}
	if code != 0 {
		t.Reason = "Error"
	}
	return t
}
