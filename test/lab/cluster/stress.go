package cluster

import (
	"bufio"
	"fmt"
	"math/rand"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Netem is the link trouble StressNode puts on a node's LAN link, both
// ways: 5 % loss and 20 ms of jitter around 20 ms of delay, as `tc qdisc
// ... netem loss 5% delay 20ms 20ms` would. This machine's kernel has no
// netem qdisc, so the lab's own relay (package netem, `lab netem`) does it
// in user space, spliced into the node's switch port.
const Netem = "loss 5% delay 20ms 20ms"

// netemArgs are the relay's flags for Netem.
var netemArgs = []string{"--loss", "0.05", "--delay", "20ms", "--jitter", "20ms"}

// Stress is a node under the load of a bad day (see StressNode).
type Stress struct {
	l     *Lab
	node  Node
	hogs  []*exec.Cmd
	relay *exec.Cmd
	// spliced says the node's switch port is spliced through the relay.
	spliced bool
	stop    chan struct{}
	wg      sync.WaitGroup
	pauses  int
}

// StressNode loads a node until Stop: a CPU hog on every core, Netem on
// both directions of its LAN link (the relay spliced into its switch
// port), and, with
// pauses, its speaker stopped for 100 ms (SIGSTOP, then SIGCONT) every
// 0.5–1.5 s, timed by seed.
func (l *Lab) StressNode(name string, pauses bool, seed int64) (*Stress, error) {
	n, err := l.Node(name)
	if err != nil {
		return nil, err
	}
	s := &Stress{l: l, node: n, stop: make(chan struct{})}
	if err := s.splice(seed); err != nil {
		s.Stop()
		return nil, err
	}
	for i := 0; i < runtime.NumCPU(); i++ {
		c := exec.Command("ip", "netns", "exec", n.Name, "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			s.Stop()
			return nil, err
		}
		s.hogs = append(s.hogs, c)
	}
	if pauses {
		s.wg.Add(1)
		go s.pause(seed)
	}
	return s, nil
}

// splice relays the node's switch port, impaired, to a new veth pair whose
// other end takes its place on the bridge:
// node eth0 - port - relay - port+"i" = port+"o" - br0.
// The relay starts first; then one `ip -batch` moves the port off the
// bridge and the pair's end onto it, so that the link is never cut for
// more than a moment (a cut of 150 ms is a failure the heartbeats detect).
func (s *Stress) splice(seed int64) error {
	sw, port := s.l.Switch, s.node.Port
	in, out := port+"i", port+"o"
	_ = ip(sw, "link", "del", in)
	for _, args := range [][]string{
		{"link", "add", in, "type", "veth", "peer", "name", out},
		{"link", "set", in, "up"},
		{"link", "set", out, "up"},
	} {
		if err := ip(sw, args...); err != nil {
			return err
		}
	}
	argv := append([]string{"netns", "exec", sw, s.l.LabBinary, "netem", "--a", port, "--b", in, "--seed", fmt.Sprint(seed)}, netemArgs...)
	s.relay = exec.Command("ip", argv...)
	stdout, err := s.relay.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.relay.Start(); err != nil {
		return fmt.Errorf("starting the netem relay: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the netem relay did not start: %w", err)
	}
	if strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("the netem relay did not start: it said %q", line)
	}
	if err := ipBatch(sw, "link set "+port+" nomaster", "link set "+out+" master br0"); err != nil {
		return err
	}
	s.spliced = true
	return nil
}

// unsplice undoes splice, the bridge first, in one batch.
func (s *Stress) unsplice() {
	sw, port := s.l.Switch, s.node.Port
	if s.spliced {
		_ = ipBatch(sw, "link set "+port+"o nomaster", "link set "+port+" master br0")
	}
	if s.relay != nil && s.relay.Process != nil {
		_ = s.relay.Process.Signal(syscall.SIGTERM)
		_ = s.relay.Wait()
	}
	_ = ip(sw, "link", "del", port+"i")
}

// ipBatch runs ip commands in namespace ns in one process, one after the
// other without a pause.
func ipBatch(ns string, cmds ...string) error {
	c := exec.Command("ip", "-n", ns, "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch %q: %w: %s", ns, cmds, err, out)
	}
	return nil
}

func (s *Stress) pause(seed int64) {
	defer s.wg.Done()
	rnd := rand.New(rand.NewSource(seed))
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(time.Duration(500+rnd.Intn(1000)) * time.Millisecond):
		}
		pid, ok := s.l.PID(s.node.Name + "-speaker")
		if !ok {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(100 * time.Millisecond)
		_ = syscall.Kill(pid, syscall.SIGCONT)
		s.pauses++
	}
}

// Stop ends the stress and returns how many times the speaker was paused.
func (s *Stress) Stop() int {
	select {
	case <-s.stop:
		return s.pauses
	default:
	}
	close(s.stop)
	s.wg.Wait()
	for _, c := range s.hogs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	}
	s.unsplice()
	if pid, ok := s.l.PID(s.node.Name + "-speaker"); ok {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return s.pauses
}

// MACMoves counts the changes of the answering MAC along a watch's
// answers (each is a move of the address), and lists the MACs.
func MACMoves(answers []ARPAnswer) (int, []string) {
	moves, last := 0, ""
	seen := map[string]bool{}
	var macs []string
	for _, a := range answers {
		if !seen[a.MAC] {
			seen[a.MAC] = true
			macs = append(macs, a.MAC)
		}
		if last != "" && a.MAC != last {
			moves++
		}
		last = a.MAC
	}
	return moves, macs
}
