package agent

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestProcessStatus(t *testing.T) {
	started := metav1.NewTime(time.Unix(2000, 0))
	exit := func(code int32) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", Message: "boom", StartedAt: started, FinishedAt: metav1.NewTime(time.Unix(2010, 0))}
	}
	base := procView{
		hostIPs:     []netip.Addr{netip.MustParseAddr("198.18.96.12")},
		podIPs:      []netip.Addr{netip.MustParseAddr("198.18.34.2"), netip.MustParseAddr("2001:db8:42:2::2")},
		containerID: "lab://plab-n2-p1",
	}
	running := base
	running.state.Running = &corev1.ContainerStateRunning{StartedAt: started}
	ready := running
	ready.ready = true
	crashLoop := base
	crashLoop.restarts = 1
	crashLoop.state.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1s"}
	crashLoop.lastState.Terminated = exit(2)
	failed := base
	failed.state.Terminated = exit(3)
	succeeded := base
	succeeded.state.Terminated = exit(0)
	succeeded.state.Terminated.Reason = "Completed"

	now := metav1.NewTime(time.Unix(3000, 0))
	for name, tc := range map[string]struct {
		v        procView
		phase    corev1.PodPhase
		ready    corev1.ConditionStatus
		reason   string
		started  bool
		exitCode *int32
	}{
		"running, not ready yet": {v: running, phase: corev1.PodRunning, ready: corev1.ConditionFalse, reason: "ContainersNotReady", started: true},
		"running and ready":      {v: ready, phase: corev1.PodRunning, ready: corev1.ConditionTrue, started: true},
		"crash loop":             {v: crashLoop, phase: corev1.PodRunning, ready: corev1.ConditionFalse, reason: "ContainersNotReady"},
		"failed":                 {v: failed, phase: corev1.PodFailed, ready: corev1.ConditionFalse, reason: "PodCompleted", exitCode: new(int32(3))},
		"succeeded":              {v: succeeded, phase: corev1.PodSucceeded, ready: corev1.ConditionFalse, reason: "PodCompleted", exitCode: new(int32(0))},
	} {
		pod := pharosTestPod()
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
		st := processStatus(pod, tc.v, now)
		if st.Phase != tc.phase || st.QOSClass != corev1.PodQOSBestEffort || st.PodIP != "198.18.34.2" || len(st.PodIPs) != 2 || st.HostIP != "198.18.96.12" {
			t.Errorf("%s: status %+v", name, st)
		}
		for _, c := range st.Conditions {
			if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && (c.Status != tc.ready || c.Reason != tc.reason) {
				t.Errorf("%s: condition %+v", name, c)
			}
		}
		cs := st.ContainerStatuses[0]
		if cs.Name != "controller" || cs.Ready != (tc.ready == corev1.ConditionTrue) || *cs.Started != tc.started ||
			cs.RestartCount != tc.v.restarts || cs.ContainerID != "lab://plab-n2-p1" {
			t.Errorf("%s: container status %+v", name, cs)
		}
		if tc.exitCode != nil && (cs.State.Terminated == nil || cs.State.Terminated.ExitCode != *tc.exitCode || cs.State.Terminated.ContainerID != "lab://plab-n2-p1") {
			t.Errorf("%s: state %+v", name, cs.State)
		}
		if name == "crash loop" && (cs.State.Waiting == nil || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2) {
			t.Errorf("%s: state %+v last %+v", name, cs.State, cs.LastTerminationState)
		}

		// After the round trip through the API the status is current,
		// and stays so: the resync writes nothing.
		pod.Status = st
		pod = roundTrip(t, pod)
		if !processStatusCurrent(pod, tc.v) {
			t.Errorf("%s: status not current after writing it", name)
		}
	}

	// Readiness changes are writes; the transition time moves only then.
	pod := pharosTestPod()
	pod.Status = processStatus(pod, running, now)
	pod = roundTrip(t, pod)
	if processStatusCurrent(pod, ready) {
		t.Error("turning ready is not a change")
	}
	later := metav1.NewTime(time.Unix(4000, 0))
	st := processStatus(pod, ready, later)
	for _, c := range st.Conditions {
		switch c.Type {
		case corev1.PodReady:
			if !c.LastTransitionTime.Equal(&later) {
				t.Errorf("Ready moved at %v", c.LastTransitionTime)
			}
		case corev1.PodScheduled:
			if !c.LastTransitionTime.Equal(&now) {
				t.Errorf("PodScheduled moved at %v", c.LastTransitionTime)
			}
		}
	}
}
