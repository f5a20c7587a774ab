// Package routers runs real BGP routers (FRR and BIRD) inside lab network
// namespaces, so that tests judge Pharos's BGP speaker by what independent
// implementations say: their own JSON (vtysh) or CLI output (birdc) and the
// kernel routes they install, not by what the speaker believes it sent.
//
// Each router lives in a working directory of its own that holds its
// configuration, pid files, control sockets and logs, and the daemons are
// children of the test process started through `ip netns exec`, so nothing
// is shared with another router or with a system-wide FRR or BIRD.
package routers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Family is a BGP address family (AFI with the unicast SAFI), spelled as
// FRR's commands spell it.
type Family string

// The two unicast address families the lab routers carry.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// families returns fams, or both families when fams is empty: MP-BGP lets
// one session, IPv4 or IPv6, carry both, which is how a dual-stack speaker
// is usually peered.
func families(fams []Family) ([]Family, error) {
	if len(fams) == 0 {
		return []Family{IPv4, IPv6}, nil
	}
	for _, f := range fams {
		if f != IPv4 && f != IPv6 {
			return nil, fmt.Errorf("unknown address family %q", f)
		}
	}
	return fams, nil
}

// familyOf is the family of an address.
func familyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// BFDTimers are the BFD timers of a session. A zero field takes the lab
// default: 300 ms intervals and a multiplier of 3, which detect a dead peer
// in 900 ms.
type BFDTimers struct {
	ReceiveMs  int
	TransmitMs int
	Multiplier int
}

func (t BFDTimers) withDefaults() BFDTimers {
	if t.ReceiveMs == 0 {
		t.ReceiveMs = 300
	}
	if t.TransmitMs == 0 {
		t.TransmitMs = 300
	}
	if t.Multiplier == 0 {
		t.Multiplier = 3
	}
	return t
}

// daemon is one router process. It is not daemonized (no fork, no -d): as
// a child of the test it can be signalled and reaped by its pid, and its
// stdout and stderr land in DIR/NAME.out.
type daemon struct {
	name string
	argv []string // as passed to exec, including `ip netns exec NS`
	cmd  *exec.Cmd
	done chan struct{}
	err  error // why it ended (never nil), set before done is closed
}

// startDaemon starts argv in namespace ns (the current one if ns is empty).
func startDaemon(ns, dir, name string, argv []string) (*daemon, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	out, err := os.OpenFile(filepath.Join(dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	// A test killed without cleanup should not leave routers behind. The
	// kernel drops this for daemons that change their user (FRR's -u frr),
	// which is why the tests also kill whatever is left in their
	// namespaces before deleting them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, argv: argv, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		if d.err == nil {
			d.err = errors.New("exit status 0")
		}
		close(d.done)
	}()
	return d, nil
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has already been reaped (its pid
// could then belong to another process).
func (d *daemon) signal(sig syscall.Signal) error {
	if d.exited() {
		return fmt.Errorf("%s has exited: %w", d.name, d.err)
	}
	return d.cmd.Process.Signal(sig)
}

// stop asks the process to end (SIGTERM, plus SIGCONT in case a fault test
// left it stopped) and kills it if it has not ended within grace.
func (d *daemon) stop(grace time.Duration) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-d.done:
		return
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// kill ends the process at once, as a crash would, and reaps it.
func (d *daemon) kill() {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// poll calls f every interval until it returns nil, ctx ends or timeout
// passes, and returns the last error of f on failure.
func poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// runOutput runs a command and returns its stdout, with stderr in the
// error when it fails.
func runOutput(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// birdc prints its errors on stdout.
		return out, fmt.Errorf("%s %q: %w: %s%s", name, args, err, stderr.String(), snippet(out))
	}
	return out, nil
}

// limitedBuffer keeps the first 4 KiB written to it: enough for an error
// message, bounded if a command floods stderr.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// snippet shortens output for an error message.
func snippet(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
