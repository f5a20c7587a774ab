// Package netem impairs a link in user space, as Linux's netem qdisc would
// (which this machine's kernel lacks): it relays every Ethernet frame
// between two interfaces, dropping a share of them and delaying the rest by
// a random time. The lab splices it into a node's switch port, so both
// directions of the node's LAN link are impaired.
package netem

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Impairment is what happens to each frame: it is lost with probability
// Loss, else delayed by Delay plus a uniform random time in [-Jitter,
// +Jitter] (never below 0), like `tc qdisc add ... netem loss L delay D J`.
// Jitter reorders frames, as netem's does.
type Impairment struct {
	Loss          float64
	Delay, Jitter time.Duration
}

// Decide draws one frame's fate.
func (im Impairment) Decide(rnd *rand.Rand) (drop bool, delay time.Duration) {
	if rnd.Float64() < im.Loss {
		return true, 0
	}
	d := im.Delay
	if im.Jitter > 0 {
		d += time.Duration(rnd.Int63n(int64(2*im.Jitter)+1)) - im.Jitter
	}
	return false, max(d, 0)
}

// Stats count the frames relayed.
type Stats struct {
	Relayed, Dropped uint64
}

// Relay relays frames between interfaces a and b, impaired, until ctx
// ends; it calls ready, if not nil, once its sockets are open. The frames
// keep their virtio-net headers (PACKET_VNET_HDR), so that the veths'
// offloaded super-frames pass whole.
func Relay(ctx context.Context, a, b string, im Impairment, seed int64, ready func()) (Stats, error) {
	fa, err := open(a)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(fa)
	fb, err := open(b)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(fb)
	var (
		mu    sync.Mutex
		rnd   = rand.New(rand.NewSource(seed))
		stats Stats
	)
	relay := func(from, to int, toIfindex int) {
		buf := make([]byte, 65536+16)
		for ctx.Err() == nil {
			n, sa, err := unix.Recvfrom(from, buf, 0)
			if err != nil {
				continue // the receive timeout, to look at ctx
			}
			if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue // our own writes
			}
			mu.Lock()
			drop, delay := im.Decide(rnd)
			if drop {
				stats.Dropped++
			} else {
				stats.Relayed++
			}
			mu.Unlock()
			if drop {
				continue
			}
			frame := append([]byte(nil), buf[:n]...)
			time.AfterFunc(delay, func() {
				_ = unix.Sendto(to, frame, 0, &unix.SockaddrLinklayer{Ifindex: toIfindex, Protocol: htons(unix.ETH_P_ALL)})
			})
		}
	}
	ia, _ := net.InterfaceByName(a)
	ib, _ := net.InterfaceByName(b)
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); relay(fa, fb, ib.Index) }()
	go func() { defer wg.Done(); relay(fb, fa, ia.Index) }()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return stats, nil
}

// open returns a packet socket bound to the interface, promiscuous, with
// virtio-net headers and a 100 ms receive timeout.
func open(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("netem: %s on %s: %w", what, name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("promiscuous mode", err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
