package cluster

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MemberlistPort is the speakers' memberlist port (TCP and UDP), the
// speaker's --memberlist-port default that the lab uses.
const MemberlistPort = 7946

// partitionTable is the nftables table PartitionMemberlist adds in a node.
const partitionTable = "pharos_lab_partition"

// PartitionMemberlist cuts a node off the speakers' memberlist cluster
// while leaving it on the LAN: an nftables table in the node's namespace
// drops every TCP and UDP packet to or from the memberlist port, in and
// out (MetalLB issue 740: a firewall that blocks only that port). ARP,
// NDP, the API server and the data path are untouched. HealMemberlist
// removes it.
func (l *Lab) PartitionMemberlist(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	_ = l.HealMemberlist(name)
	p := MemberlistPort
	rules := fmt.Sprintf(`table inet %[1]s {
	chain input {
		type filter hook input priority -300; policy accept;
		tcp dport %[2]d drop
		udp dport %[2]d drop
		tcp sport %[2]d drop
		udp sport %[2]d drop
	}
	chain output {
		type filter hook output priority -300; policy accept;
		tcp dport %[2]d drop
		udp dport %[2]d drop
		tcp sport %[2]d drop
		udp sport %[2]d drop
	}
}
`, partitionTable, p)
	cmd := exec.Command("ip", "netns", "exec", n.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// HealMemberlist removes PartitionMemberlist's rules from a node; it is
// a no-op on a node that has none.
func (l *Lab) HealMemberlist(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	out, err := exec.Command("ip", "netns", "exec", n.Name, "nft", "delete", "table", "inet", partitionTable).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("nft in %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// ARPAnswer is one ARP reply seen for the watched address.
type ARPAnswer struct {
	At  time.Time
	MAC string // upper case
}

// ARPWatch asks the LAN who has an IPv4 address at a fixed interval from
// a raw socket in one of the lab's namespaces, and records every reply:
// a 10 ms resolution that arping's whole seconds do not give.
type ARPWatch struct {
	fd      int
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers []ARPAnswer
	start   time.Time
	end     time.Time
}

// WatchARP starts asking, from namespace ns's eth0, for ip every interval.
func (l *Lab) WatchARP(ns string, ip netip.Addr, interval time.Duration) (*ARPWatch, error) {
	if !ip.Is4() {
		return nil, fmt.Errorf("WatchARP: %s is not IPv4", ip)
	}
	fd, ifi, src, err := openARPSocket(ns)
	if err != nil {
		return nil, err
	}
	w := &ARPWatch{fd: fd, stop: make(chan struct{}), start: time.Now()}
	req := arpRequest(ifi.HardwareAddr, src, ip)
	dst := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			_ = unix.Sendto(fd, req, 0, dst)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer w.wg.Done()
		buf := make([]byte, 1500)
		want := ip.As4()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // the receive timeout, to look at stop
			}
			// Ethernet header (14) then ARP: op at 20, sender MAC at 22,
			// sender IP at 28.
			if n < 42 || binary.BigEndian.Uint16(buf[12:14]) != unix.ETH_P_ARP ||
				binary.BigEndian.Uint16(buf[20:22]) != 2 || [4]byte(buf[28:32]) != want {
				continue
			}
			mac := strings.ToUpper(net.HardwareAddr(buf[22:28]).String())
			w.mu.Lock()
			w.answers = append(w.answers, ARPAnswer{At: time.Now(), MAC: mac})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// Stop ends the watch and returns the replies, in arrival order.
func (w *ARPWatch) Stop() []ARPAnswer {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		w.wg.Wait()
		_ = unix.Close(w.fd)
		w.end = time.Now()
	}
	return w.Answers()
}

// Answers returns a copy of the replies seen so far.
func (w *ARPWatch) Answers() []ARPAnswer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ARPAnswer(nil), w.answers...)
}

// ARPSummary describes what a watch saw.
type ARPSummary struct {
	// MACs are the distinct MACs that answered.
	MACs []string
	// TwoMAC is the time from the first to the last slot in which two
	// different MACs answered (0 when that never happened).
	TwoMAC time.Duration
	// TwoMACFrom is the first such slot.
	TwoMACFrom time.Time
	// LongestTwoMAC is the longest single episode of two MACs: slots with
	// two MACs no more than a second apart count as one episode. Over a
	// long watch with several faults it is the figure to bound, where
	// TwoMAC spans them all.
	LongestTwoMAC time.Duration
	// LongestSilence is the longest time without any answer, from
	// SilenceFrom.
	LongestSilence time.Duration
	SilenceFrom    time.Time
	// Last is the MAC of the last answer.
	Last string
}

// SummarizeARP groups answers into slots of the given width (a couple of
// request intervals) and measures the time two MACs answered and the
// longest silence between from and to.
func SummarizeARP(answers []ARPAnswer, slot time.Duration, from, to time.Time) ARPSummary {
	var s ARPSummary
	slots := map[int64]map[string]bool{}
	seen := map[string]bool{}
	prev := from
	for _, a := range answers {
		if a.At.Before(from) || a.At.After(to) {
			continue
		}
		k := a.At.Sub(from) / slot
		if slots[int64(k)] == nil {
			slots[int64(k)] = map[string]bool{}
		}
		slots[int64(k)][a.MAC] = true
		if !seen[a.MAC] {
			seen[a.MAC] = true
			s.MACs = append(s.MACs, a.MAC)
		}
		if gap := a.At.Sub(prev); gap > s.LongestSilence {
			s.LongestSilence, s.SilenceFrom = gap, prev
		}
		prev = a.At
		s.Last = a.MAC
	}
	if gap := to.Sub(prev); gap > s.LongestSilence {
		s.LongestSilence, s.SilenceFrom = gap, prev
	}
	var two []int64
	for k, macs := range slots {
		if len(macs) > 1 {
			two = append(two, k)
		}
	}
	if len(two) > 0 {
		sort.Slice(two, func(i, j int) bool { return two[i] < two[j] })
		s.TwoMAC = time.Duration(two[len(two)-1]-two[0]+1) * slot
		s.TwoMACFrom = from.Add(time.Duration(two[0]) * slot)
		first := two[0]
		for i, k := range two {
			if i > 0 && time.Duration(k-two[i-1])*slot > time.Second {
				first = k
			}
			if d := time.Duration(k-first+1) * slot; d > s.LongestTwoMAC {
				s.LongestTwoMAC = d
			}
		}
	}
	return s
}

func (s ARPSummary) String() string {
	return fmt.Sprintf("MACs %v, two MACs for %v, longest silence %v, last %s", s.MACs, s.TwoMAC, s.LongestSilence, s.Last)
}

// openARPSocket opens an AF_PACKET socket for ARP on eth0 of namespace
// ns (the socket stays in that namespace after the thread returns).
func openARPSocket(ns string) (int, *net.Interface, [4]byte, error) {
	var (
		fd  = -1
		ifi *net.Interface
		src [4]byte
	)
	err := InNetns(ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, e := netip.ParsePrefix(a.String()); e == nil && p.Addr().Is4() {
				src = p.Addr().As4()
				break
			}
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP))); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			_ = unix.Close(fd)
			fd = -1
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return nil
	})
	if err != nil {
		return -1, nil, src, fmt.Errorf("ARP socket in %s: %w", ns, err)
	}
	return fd, ifi, src, nil
}

// arpRequest is a broadcast "who has target, tell src" frame.
func arpRequest(mac net.HardwareAddr, src [4]byte, target netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	binary.BigEndian.PutUint16(f[14:16], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:18], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:22], 1) // request
	copy(f[22:28], mac)
	copy(f[28:32], src[:])
	t := target.As4()
	copy(f[38:42], t[:])
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
