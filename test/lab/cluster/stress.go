package cluster

import (
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
// ways: 5 % loss and 20 ms of jitter around 20 ms of delay.
const Netem = "loss 5% delay 20ms 20ms"

// Stress is a node under the load of a bad day (see StressNode).
type Stress struct {
	l      *Lab
	node   Node
	hogs   []*exec.Cmd
	qdiscs [][2]string
	stop   chan struct{}
	wg     sync.WaitGroup
	pauses int
}

// StressNode loads a node until Stop: a CPU hog on every core, Netem on
// both ends of its LAN link (its eth0 and its switch port), and, with
// pauses, its speaker stopped for 100 ms (SIGSTOP, then SIGCONT) every
// 0.5–1.5 s, timed by seed.
func (l *Lab) StressNode(name string, pauses bool, seed int64) (*Stress, error) {
	n, err := l.Node(name)
	if err != nil {
		return nil, err
	}
	s := &Stress{l: l, node: n, stop: make(chan struct{})}
	for _, q := range [][2]string{{n.Name, "eth0"}, {l.Switch, n.Port}} {
		args := append([]string{"netns", "exec", q[0], "tc", "qdisc", "replace", "dev", q[1], "root", "netem"}, strings.Fields(Netem)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			s.Stop()
			return nil, fmt.Errorf("tc netem on %s %s: %v: %s", q[0], q[1], err, out)
		}
		s.qdiscs = append(s.qdiscs, q)
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
	for _, q := range s.qdiscs {
		_ = exec.Command("ip", "netns", "exec", q[0], "tc", "qdisc", "del", "dev", q[1], "root").Run()
	}
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
