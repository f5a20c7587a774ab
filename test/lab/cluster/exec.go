package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runIP runs iproute2's ip and returns its output, or an error that
// carries it.
func runIP(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// ip runs iproute2; with ns set, inside that namespace.
func ip(ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := runIP(args...)
	return err
}

// sysctl sets a per-namespace kernel parameter.
func sysctl(ns, key, value string) error {
	_, err := runIP("netns", "exec", ns, "sysctl", "-qw", key+"="+value)
	return err
}

// Process is a long-running lab component: its command line is kept so
// that fault tests can stop and start it again.
type Process struct {
	// Name identifies the component, e.g. "kube-apiserver" or "plab-n1-proxy".
	Name string `json:"name"`
	// Netns is the network namespace it runs in.
	Netns string `json:"netns"`
	// MountRoot keeps the root mount namespace (nsenter --net) instead of
	// ip netns exec's private one, for processes that create namespaces.
	MountRoot bool `json:"mountRoot"`
	// Argv is the command line.
	Argv []string `json:"argv"`
	// Restart runs it under Supervise: restarted with the kubelet's
	// back-off whenever it exits, as Pharos's pods are.
	Restart bool `json:"restart"`
}

func (l *Lab) procDir() string { return filepath.Join(l.Dir, "proc") }

// LogDir holds each component's log.
func (l *Lab) LogDir() string { return filepath.Join(l.Dir, "logs") }

// Start starts a component detached from the caller, records its command
// line and pid, and appends its output to LogDir()/<name>.log.
func (l *Lab) Start(p Process) error {
	if err := os.MkdirAll(l.procDir(), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(l.LogDir(), 0o755); err != nil {
		return err
	}
	spec, _ := json.Marshal(p)
	if err := os.WriteFile(filepath.Join(l.procDir(), p.Name+".json"), spec, 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(l.LogDir(), p.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	var argv []string
	if p.MountRoot {
		argv = append([]string{"nsenter", "--net=/run/netns/" + p.Netns, "--"}, p.Argv...)
	} else {
		argv = append([]string{"ip", "netns", "exec", p.Netns}, p.Argv...)
	}
	// The child's pid, when a supervisor runs it (PID reads it first).
	childPID := filepath.Join(l.procDir(), p.Name+".child.pid")
	_ = os.Remove(childPID)
	if p.Restart && l.LabBinary != "" {
		argv = append([]string{l.LabBinary, "supervise", childPID}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session: the component outlives `lab up` and is killed by group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if we outlive it
	// The group's leader: Stop signals the whole group through it.
	return os.WriteFile(filepath.Join(l.procDir(), p.Name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// Restart starts a stopped component again with its recorded command line.
func (l *Lab) Restart(name string) error {
	return l.RestartWith(name, func(argv []string) []string { return argv })
}

// PID returns a component's pid if it is running: the component itself
// (`ip netns exec` execs it, so the pid is the same process), not its
// supervisor.
func (l *Lab) PID(name string) (int, bool) {
	if _, ok := l.groupPID(name); !ok {
		return 0, false
	}
	if pid, ok := alive(filepath.Join(l.procDir(), name+".child.pid")); ok {
		return pid, true
	}
	if l.supervised(name) {
		return 0, false // between two runs
	}
	return l.groupPID(name)
}

// supervised reports whether the component runs under Supervise.
func (l *Lab) supervised(name string) bool {
	data, err := os.ReadFile(filepath.Join(l.procDir(), name+".json"))
	if err != nil {
		return false
	}
	var p Process
	return json.Unmarshal(data, &p) == nil && p.Restart
}

// groupPID is the pid of the process Start started (the supervisor, for a
// supervised component), which leads the component's process group.
func (l *Lab) groupPID(name string) (int, bool) {
	return alive(filepath.Join(l.procDir(), name+".pid"))
}

// alive reads a pid file and reports whether that process lives (a
// zombie does not).
func alive(pidfile string) (int, bool) {
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0, false
	}
	// A zombie counts as stopped.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return 0, false
		}
	}
	return pid, true
}

// Running reports whether a component runs.
func (l *Lab) Running(name string) bool {
	_, ok := l.PID(name)
	return ok
}

// Stop sends sig to a component's process group and waits up to 10 s for
// it to exit. SIGKILL is a crash; SIGTERM is a graceful stop.
func (l *Lab) Stop(name string, sig syscall.Signal) error {
	pid, ok := l.groupPID(name)
	if !ok {
		return nil
	}
	_ = syscall.Kill(-pid, sig)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := l.groupPID(name); !ok && !l.Running(name) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return fmt.Errorf("%s did not stop within 10s of %s; killed", name, sig)
}

// killNamespace kills every process whose network namespace is ns.
func killNamespace(ns string) {
	out, err := runIP("netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// listNamespaces returns the network namespaces whose name has the prefix.
func listNamespaces(prefix string) []string {
	out, err := runIP("netns", "list")
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			names = append(names, f[0])
		}
	}
	return names
}

var errNotRoot = errors.New("the lab needs root on Linux (network namespaces, veth, nftables): run it with sudo, e.g. sudo make lab")

// RestartWith starts a stopped component again with its recorded command
// line changed by edit, and records the new one (a later Restart keeps it).
func (l *Lab) RestartWith(name string, edit func(argv []string) []string) error {
	data, err := os.ReadFile(filepath.Join(l.procDir(), name+".json"))
	if err != nil {
		return fmt.Errorf("no component %q in this lab: %w", name, err)
	}
	var p Process
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	p.Argv = edit(p.Argv)
	return l.Start(p)
}
