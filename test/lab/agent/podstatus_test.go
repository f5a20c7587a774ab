package agent

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1", Generation: 1},
		Spec: corev1.PodSpec{
			NodeName: "plab-n1",
			Containers: []corev1.Container{
				{Name: "web", Image: "echo:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 80, Protocol: corev1.ProtocolTCP}}},
				{Name: "side", Image: "echo:2", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			},
		},
		Status: corev1.PodStatus{
			Phase:    corev1.PodPending,
			QOSClass: corev1.PodQOSBestEffort,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Unix(1000, 0))},
			},
		},
	}
}

func TestPodPorts(t *testing.T) {
	if got := podPorts(testPod()); !slices.Equal(got, []int{8080, 80}) {
		t.Errorf("ports %v", got)
	}
	if got := podPorts(&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}); !slices.Equal(got, []int{80}) {
		t.Errorf("default ports %v", got)
	}
}

// roundTrip passes a pod through JSON, as the apiserver does, which among
// other things drops sub-second precision from timestamps.
func roundTrip(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunningStatus(t *testing.T) {
	pod := testPod()
	v := runningView{
		hostIPs:   []netip.Addr{netip.MustParseAddr("198.18.96.11"), netip.MustParseAddr("2001:db8:96::11")},
		podIPs:    []netip.Addr{netip.MustParseAddr("198.18.33.2"), netip.MustParseAddr("2001:db8:42:1::2")},
		netns:     "plab-n1-p1",
		startedAt: metav1.NewTime(time.Now().Truncate(time.Second)),
	}
	if runningStatusCurrent(pod, v) {
		t.Fatal("pending pod reported current")
	}
	pod.Status = runningStatus(pod, v, metav1.Now())
	st := pod.Status
	if st.Phase != corev1.PodRunning || st.PodIP != "198.18.33.2" || len(st.PodIPs) != 2 || st.PodIPs[1].IP != "2001:db8:42:1::2" {
		t.Errorf("ips %q %v", st.PodIP, st.PodIPs)
	}
	if st.HostIP != "198.18.96.11" || len(st.HostIPs) != 2 || st.StartTime == nil || st.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status %+v", st)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if !podConditionIs(st.Conditions, ct, corev1.ConditionTrue) {
			t.Errorf("condition %s not True: %v", ct, st.Conditions)
		}
	}
	if c := st.Conditions[0]; c.Type != corev1.PodScheduled || c.LastTransitionTime.Unix() != 1000 {
		t.Errorf("PodScheduled transition time changed: %v", c)
	}
	if len(st.ContainerStatuses) != 2 {
		t.Fatalf("container statuses %v", st.ContainerStatuses)
	}
	for i, cs := range st.ContainerStatuses {
		c := pod.Spec.Containers[i]
		if cs.Name != c.Name || !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil ||
			cs.Image != c.Image || cs.ImageID != "lab://"+c.Image || cs.ContainerID != "lab://plab-n1-p1" {
			t.Errorf("container status %+v", cs)
		}
	}
	if !runningStatusCurrent(roundTrip(t, pod), v) {
		t.Error("status written by runningStatus not recognised as current after a round trip")
	}
	v.restarts = 1
	if runningStatusCurrent(pod, v) {
		t.Error("a restart must make the status stale")
	}
	if got := netnsFromStatus(pod); got != "plab-n1-p1" {
		t.Errorf("netnsFromStatus = %q", got)
	}
}

func TestFailedStatus(t *testing.T) {
	pod := testPod()
	pod.Status = runningStatus(pod, runningView{
		hostIPs: []netip.Addr{netip.MustParseAddr("198.18.96.11")},
		podIPs:  []netip.Addr{netip.MustParseAddr("198.18.33.2")},
		netns:   "plab-n1-p1",
	}, metav1.Now())
	msg := "ip netns add plab-n1-p1: exit status 1: boom"
	if failedStatusCurrent(pod, msg) {
		t.Fatal("running pod reported as failed")
	}
	pod.Status = failedStatus(pod, []netip.Addr{netip.MustParseAddr("198.18.96.11")}, 0, reasonAgentError, msg, metav1.Now())
	st := pod.Status
	if st.Phase != corev1.PodPending || st.PodIP != "" || st.PodIPs != nil || st.HostIP != "198.18.96.11" {
		t.Errorf("status %+v", st)
	}
	if !podConditionIs(st.Conditions, corev1.PodReady, corev1.ConditionFalse) || !podConditionIs(st.Conditions, corev1.ContainersReady, corev1.ConditionFalse) {
		t.Errorf("conditions %v", st.Conditions)
	}
	for _, cs := range st.ContainerStatuses {
		if cs.Ready || cs.State.Waiting == nil || cs.State.Waiting.Message != msg {
			t.Errorf("container status %+v", cs)
		}
	}
	if !failedStatusCurrent(roundTrip(t, pod), msg) {
		t.Error("same failure not recognised")
	}
	if failedStatusCurrent(pod, "another error") {
		t.Error("different failure recognised as current")
	}
}

func TestNetnsIndex(t *testing.T) {
	for name, want := range map[string]int{
		"plab-n1-p1": 1, "plab-n1-p12": 12, "plab-n1-p": 0, "plab-n1-p01": 0,
		"plab-n1-px": 0, "plab-n1": 0, "plab-n10-p1": 0, "plab-n1-p1a": 0,
	} {
		if got := netnsIndex("plab-n1-p", name); got != want {
			t.Errorf("netnsIndex(%q) = %d, want %d", name, got, want)
		}
	}
	if hostVethName(99999) != "pv99999" || len(hostVethName(1<<31)) > 15 {
		t.Error("veth names")
	}
}

func TestPodMAC(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"198.18.33.2/24", "2001:db8:42:1::2/64"}, "0a:58:c6:12:21:02"},
		{[]string{"2001:db8:42:1::1:2/64"}, "0a:58:00:01:00:02"},
		{nil, ""},
	} {
		var ps []netip.Prefix
		for _, a := range tc.addrs {
			ps = append(ps, netip.MustParsePrefix(a))
		}
		if got := podMAC(ps); got != tc.want {
			t.Errorf("podMAC(%v) = %q, want %q", tc.addrs, got, tc.want)
		}
	}
}
