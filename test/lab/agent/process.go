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

// echoProc is one running echo server, i.e. one pod's "containers".
type echoProc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // Wait's result; read only after done is closed
}

// exited reports whether the process has ended.
func (p *echoProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startEcho starts argv (already including "ip netns exec <ns>") with output
// appended to logPath (discarded if empty). onExit runs after the process has
// been reaped, whatever the reason, so the pod gets reconciled at once.
func startEcho(argv []string, logPath string, onExit func()) (*echoProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open echo log: %w", err)
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
	err := cmd.Start()
	if logf != nil {
		_ = logf.Close() // the child has its own descriptor
	}
	if err != nil {
		return nil, fmt.Errorf("start echo server %q: %w", strings.Join(argv, " "), err)
	}
	p := &echoProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		if onExit != nil {
			onExit()
		}
	}()
	return p, nil
}

// stop ends the process: SIGTERM to its group, SIGKILL after stopGrace, and
// returns once it has been reaped (or gave up after a further few seconds,
// which only an unkillable process could cause).
func (p *echoProc) stop() {
	if p == nil || p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid makes the leader's pid the group id
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopGrace):
	}
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// describeExit says how the process ended, with the end of its log, for
// error messages and pod status.
func (p *echoProc) describeExit() string {
	msg := "echo server exited"
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

// waitServing polls until a TCP connect succeeds to every port on every
// address, the process exits, readyTimeout passes or ctx ends. Checking all
// of them, not just the first, means a pod reported Ready answers on every
// address family and port a Service may send it.
func waitServing(ctx context.Context, p *echoProc, addrs []netip.Addr, ports []int) error {
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
