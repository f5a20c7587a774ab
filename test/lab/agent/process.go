package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds the wait for a fresh echo server to accept
	// connections on every pod address and port.
	readyTimeout = 10 * time.Second
	// stopGrace is how long an echo server gets between SIGTERM and SIGKILL.
	stopGrace = 2 * time.Second
)

// podProc is one running process that stands in for a pod's containers:
// an echo server, or one of Pharos's binaries.
type podProc struct {
	cmd     *exec.Cmd
	what    string // "echo server" or the image path, for messages
	logPath string
	grace   time.Duration // between SIGTERM and SIGKILL
	started time.Time

	// ready is the readiness of a Pharos pod's process, which its prober
	// (stopped through ctx once the process has been reaped) keeps.
	ready atomic.Bool
	ctx   context.Context
	// unhealthy: the agent killed the process for failing its liveness
	// probe.
	unhealthy atomic.Bool

	done     chan struct{} // closed once the process has been reaped
	err      error         // Wait's result; read only after done is closed
	finished time.Time     // read only after done is closed
}

// exited reports whether the process has ended.
func (p *podProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// procStart says how to start a pod's process.
type procStart struct {
	argv    []string // including any "ip netns exec <ns>" prefix
	env     []string // nil: the agent's own
	what    string
	logPath string        // appended to; empty discards the output
	grace   time.Duration // zero: stopGrace
	newUTS  bool          // in a UTS namespace of its own (a hostname of its own)
}

// startProc starts a pod's process. onExit runs after the process has been
// reaped, whatever the reason, so the pod gets reconciled at once.
func startProc(ps procStart, onExit func()) (*podProc, error) {
	argv := ps.argv
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = ps.env
	var logf *os.File
	if ps.logPath != "" {
		f, err := os.OpenFile(ps.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open pod log: %w", err)
		}
		logf = f
		fmt.Fprintf(f, "=== %s lab agent starting: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C meant for the lab CLI must not take
		// the pods down behind the agent's back; the agent stops them.
		Setpgid: true,
		// If the agent dies without stopping its pods, they die too
		// instead of lingering in their netns.
		Pdeathsig: syscall.SIGKILL,
	}
	if ps.newUTS {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUTS
	}
	err := cmd.Start()
	if logf != nil {
		_ = logf.Close() // the child has its own descriptor
	}
	if err != nil {
		return nil, fmt.Errorf("start %s %q: %w", ps.what, strings.Join(argv, " "), err)
	}
	grace := ps.grace
	if grace <= 0 {
		grace = stopGrace
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &podProc{cmd: cmd, what: ps.what, logPath: ps.logPath, grace: grace, started: time.Now(), ctx: ctx, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.finished = time.Now()
		cancel()
		close(p.done)
		if onExit != nil {
			onExit()
		}
	}()
	return p, nil
}

// startEcho starts an echo server: argv already includes "ip netns exec
// <ns>".
func startEcho(argv []string, logPath string, onExit func()) (*podProc, error) {
	return startProc(procStart{argv: argv, what: "echo server", logPath: logPath}, onExit)
}

// stop ends the process within its grace period; see stopWithin.
func (p *podProc) stop() {
	if p != nil {
		p.stopWithin(p.grace)
	}
}

// stopWithin ends the process: SIGTERM to its group, SIGKILL after grace,
// and returns once it has been reaped (or gave up after a further few
// seconds, which only an unkillable process could cause).
func (p *podProc) stopWithin(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid makes the leader's pid the group id
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// exitCode is the process's exit status as a container runtime reports
// it: 128+n for a process killed by signal n. Valid once it has exited.
func (p *podProc) exitCode() int32 {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return int32(p.cmd.ProcessState.ExitCode())
	case ws.Signaled():
		return 128 + int32(ws.Signal())
	}
	return int32(ws.ExitStatus())
}

// describeExit says how the process ended, with the end of its log, for
// error messages and pod status.
func (p *podProc) describeExit() string {
	msg := p.what + " exited"
	if p.err != nil {
		msg += ": " + p.err.Error()
	}
	if tail := logTail(p.logPath, 400); tail != "" {
		msg += "; log: " + tail
	}
	return msg
}

// logTail returns up to n trailing bytes of a log file, on one line.
func logTail(path string, n int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return strings.Join(strings.Fields(string(b)), " ")
}

// logTailRaw returns up to n trailing bytes of a log file as they are,
// starting at a line boundary when there is one, for a container's
// termination message.
func logTailRaw(path string, n int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	cut := false
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
		cut = true
	}
	b, _ := io.ReadAll(f)
	s := string(b)
	if i := strings.IndexByte(s, '\n'); cut && i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return strings.TrimRight(s, "\n")
}

// waitServing polls until a TCP connect succeeds to every port on every
// address, the process exits, readyTimeout passes or ctx ends. Checking all
// of them, not just the first, means a pod reported Ready answers on every
// address family and port a Service may send it.
func waitServing(ctx context.Context, p *podProc, addrs []netip.Addr, ports []int) error {
	var pending []string
	for _, a := range addrs {
		for _, port := range ports {
			pending = append(pending, netip.AddrPortFrom(a, uint16(port)).String())
		}
	}
	deadline := time.Now().Add(readyTimeout)
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	for {
		left := pending[:0]
		for _, target := range pending {
			c, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				left = append(left, target)
				continue
			}
			_ = c.Close()
		}
		pending = left
		if len(pending) == 0 {
			return nil
		}
		if p.exited() {
			return errors.New(p.describeExit())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("echo server not reachable at %s after %s", strings.Join(pending, ", "), readyTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// echoLogPath is where a pod's echo-server output goes.
func echoLogPath(dir, namespace, name string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, namespace+"_"+name+".log")
}

// joinPorts renders ports the way the echo command's --ports flag takes them.
func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
