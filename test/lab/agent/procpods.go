package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	// maxCrashBackoff caps the wait before a Pharos process that exited
	// is started again. The kubelet's 5 minutes would outlast any test; the
	// wait still doubles from 1 s so that a crashing binary does not spin.
	maxCrashBackoff = 30 * time.Second
	// crashResetAfter: a run at least this long resets the back-off, as the
	// kubelet's 10 minutes do.
	crashResetAfter = time.Minute
	// containerPATH is the PATH a container of a distroless image starts
	// with.
	containerPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ensureProcess keeps a Pharos pod's process running as its restartPolicy
// says, and reports whether it (re)started it. An exit is recorded first:
// either it ends the pod (s.final; the status then says Succeeded or
// Failed) or a restart waits out a back-off.
func (m *podManager) ensureProcess(ctx context.Context, pod *corev1.Pod, s *slot, pp *pharosPod) (bool, error) {
	if s.final {
		return false, nil
	}
	if !pp.hostNetwork {
		if err := m.ensureNetwork(ctx, s); err != nil {
			return false, err
		}
	}
	if s.proc != nil && !s.proc.exited() {
		if s.creds != nil && time.Now().After(s.creds.refreshAt) {
			// The current token stays valid for a fifth of its life yet,
			// and the periodic resync tries again.
			if err := s.creds.refresh(ctx, m, pod); err != nil {
				m.log.Warn("cannot refresh a pod's token; will retry", "pod", s.key, "err", err)
			}
		}
		return false, nil
	}
	if s.proc != nil {
		m.recordExit(s, pp)
		if s.final {
			return false, nil
		}
	}
	if wait := time.Until(s.restartAt); wait > 0 {
		m.queue.AddAfter(s.key, wait)
		return false, nil
	}
	if err := m.startPharos(ctx, pod, s, pp); err != nil {
		return false, err
	}
	return true, nil
}

// recordExit takes note of how the process ended and decides, by the
// pod's restartPolicy, whether the pod is over or restarts after a
// back-off.
func (m *podManager) recordExit(s *slot, pp *pharosPod) {
	t := terminatedState(s.proc)
	// A container killed for failing its liveness probe is restarted
	// whatever its exit code, unless the pod never restarts any.
	unhealthy := s.proc.unhealthy.Load()
	s.proc = nil
	s.prevExit, s.lastExit = s.lastExit, t
	if !restarts(pp.restartPolicy, t.ExitCode) && (!unhealthy || pp.restartPolicy == corev1.RestartPolicyNever) {
		s.final = true
		m.log.Info("pod process ended the pod", "pod", s.key, "exitCode", t.ExitCode, "restartPolicy", pp.restartPolicy)
		return
	}
	s.restarts++
	if t.FinishedAt.Sub(t.StartedAt.Time) >= crashResetAfter {
		s.crashes = 0
	}
	s.crashes++
	delay := crashBackoff(s.crashes)
	s.restartAt = time.Now().Add(delay)
	m.log.Warn("pod process exited; restarting after a back-off", "pod", s.key, "exitCode", t.ExitCode, "backoff", delay)
}

// crashBackoff is the wait before the restart after the n-th consecutive
// short run: 1 s, 2 s, 4 s ... up to maxCrashBackoff.
func crashBackoff(n int) time.Duration {
	return min(time.Second<<min(max(n, 1)-1, 5), maxCrashBackoff)
}

// startPharos starts the pod's binary through the launcher (ExecPod):
// in the pod's netns unless the pod uses the host's, as the container's
// user, with its environment and, unless the pod opts out, the identity of
// its ServiceAccount through KUBECONFIG.
func (m *podManager) startPharos(ctx context.Context, pod *corev1.Pod, s *slot, pp *pharosPod) error {
	addrs := podAddrs{podIPs: m.podIPs(s, pp), hostIPs: m.opts.InternalIPs}
	env, vals, err := containerEnv(pod, pp.container, addrs)
	if err != nil {
		return err
	}
	argv := expandArgv(pp.container, vals)
	// As with the kubelet: the pod's name (or spec.hostname), or the
	// node's for a hostNetwork pod.
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if pp.hostNetwork {
		hostname = m.opts.NodeName
	}
	hostname = hostname[:min(len(hostname), 63)]
	// What a container runtime sets, then the container's own variables
	// (exec keeps the last of duplicates). Service links
	// (KUBERNETES_SERVICE_HOST and the like) are not set: Pharos does not
	// use them, and without them client-go never tries the in-cluster
	// configuration that the lab cannot provide.
	full := append([]string{"PATH=" + containerPATH, "HOSTNAME=" + hostname, "HOME=/"}, env...)
	if pp.credentials {
		_ = s.creds.remove()
		s.creds = nil
		creds, err := m.newCredentials(ctx, pod, pp.uid, pp.gid)
		if err != nil {
			return err
		}
		s.creds = creds
		full = append(full, "KUBECONFIG="+creds.kubeconfigPath())
	}
	groups := make([]string, len(pp.groups))
	for i, g := range pp.groups {
		groups[i] = strconv.FormatInt(g, 10)
	}
	launch := slices.Clone(m.opts.LaunchCommand)
	launch = append(launch, "--uid", strconv.FormatInt(pp.uid, 10), "--gid", strconv.FormatInt(pp.gid, 10),
		"--groups", strings.Join(groups, ","), "--hostname", hostname, "--caps", strings.Join(pp.caps, ","))
	for _, v := range pp.volumes {
		dir, err := m.ensureVolume(pod, v.name)
		if err != nil {
			return err
		}
		launch = append(launch, "--bind", bindMount{src: dir, dst: v.mountPath, readOnly: v.readOnly}.String())
	}
	if pp.readOnlyRoot {
		launch = append(launch, "--read-only-root")
	}
	if pp.noNewPrivs {
		launch = append(launch, "--no-new-privs")
	}
	launch = append(launch, "--seccomp", pp.seccomp, "--binary", pp.binary, "--")
	launch = append(launch, argv...)
	// The node's netns is entered again for hostNetwork pods, not for
	// the network (the agent is in it already) but for what ip netns exec
	// gives: a mount namespace of the pod's own with a /sys that shows the
	// node's interfaces rather than the machine's.
	switch {
	case !pp.hostNetwork:
		launch = append([]string{"ip", "netns", "exec", s.netns}, launch...)
	case m.hostNetns != "":
		launch = append([]string{"ip", "netns", "exec", m.hostNetns}, launch...)
	}
	key := s.key
	p, err := startProc(procStart{
		argv: launch, env: full, what: argv[0], grace: pp.grace, newUTS: true,
		logPath: echoLogPath(m.opts.LogDir, pod.Namespace, pod.Name),
	}, func() { m.queue.Add(key) })
	if err != nil {
		return err
	}
	s.proc = p
	s.startedAt = metav1.NewTime(p.started.Truncate(time.Second))
	if probe := pp.container.ReadinessProbe; probeSupported(probe) {
		host := addrs.podIPs[0]
		go probeReadiness(p.ctx, probe, host, pp.container.Ports, func(ok bool) {
			p.ready.Store(ok)
			m.queue.Add(key)
		})
	} else {
		p.ready.Store(true)
	}
	if probe := pp.container.LivenessProbe; probeSupported(probe) {
		host := addrs.podIPs[0]
		grace := pp.grace
		if g := probe.TerminationGracePeriodSeconds; g != nil {
			grace = min(time.Duration(*g)*time.Second, maxGrace)
		}
		go probeLiveness(p.ctx, probe, host, pp.container.Ports, func(err error) {
			m.log.Warn("liveness probe failed; killing the container to restart it", "pod", key,
				"failures", failureThreshold(probe), "err", err, "grace", grace)
			p.unhealthy.Store(true)
			p.stopWithin(grace)
		})
	}
	return nil
}

// ensureVolume returns the directory of the pod's emptyDir volume name,
// creating it (empty, writable by every user, as the kubelet makes it) on
// the pod's first start; it lasts as long as the pod, across restarts of
// its container, and teardown removes it.
func (m *podManager) ensureVolume(pod *corev1.Pod, name string) (string, error) {
	dir := filepath.Join(m.volumesDir(pod.UID), name)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	// Not subject to the umask.
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	return dir, nil
}

// volumesDir holds the emptyDir volumes of the pod with uid.
func (m *podManager) volumesDir(uid types.UID) string {
	return filepath.Join(m.opts.StateDir, "volumes", string(uid))
}

// podIPs are a Pharos pod's addresses: its own, or the node's if it uses
// the host's network.
func (m *podManager) podIPs(s *slot, pp *pharosPod) []netip.Addr {
	if pp.hostNetwork {
		return m.opts.InternalIPs
	}
	return m.validAddrs(s)
}

// procView describes the pod's container for processStatus.
func (m *podManager) procView(pod *corev1.Pod, s *slot, pp *pharosPod) procView {
	v := procView{
		hostIPs:     m.opts.InternalIPs,
		podIPs:      m.podIPs(s, pp),
		containerID: "lab://" + s.netns,
		restarts:    s.restarts,
	}
	if pp.hostNetwork {
		// Not a netns name, so an agent restart never takes it for one.
		v.containerID = "lab://" + m.opts.NodeName + "/" + pod.Namespace + "_" + pod.Name
	}
	if s.lastExit != nil {
		v.lastState.Terminated = s.lastExit
	}
	switch {
	case s.final:
		v.state.Terminated = s.lastExit
		v.lastState = corev1.ContainerState{}
		if s.prevExit != nil {
			v.lastState.Terminated = s.prevExit
		}
	case s.proc != nil:
		v.state.Running = &corev1.ContainerStateRunning{StartedAt: s.startedAt}
		v.ready = !s.proc.exited() && s.proc.ready.Load()
	default:
		v.state.Waiting = &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				crashBackoff(s.crashes), pp.container.Name, pod.Name, pod.Namespace, pod.UID),
		}
	}
	return v
}

// writeProcessStatus brings the pod's status in line with its process.
func (m *podManager) writeProcessStatus(ctx context.Context, pod *corev1.Pod, s *slot, pp *pharosPod) error {
	v := m.procView(pod, s, pp)
	if processStatusCurrent(pod, v) {
		return nil
	}
	return m.writeStatus(ctx, pod, func(p *corev1.Pod) (corev1.PodStatus, bool) {
		return processStatus(p, v, metav1.Now()), !processStatusCurrent(p, v)
	})
}
