package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// socket is the heartbeat's UDP socket, kept out of Go's network poller on
// purpose: nothing waits for its datagrams. They queue in the kernel with
// the time each arrived (SO_TIMESTAMPNS), and Run reads them all when it
// wakes anyway, to send its own. A socket in the poller would wake the
// process for every heartbeat received, and a wakeup costs more than the
// work (about 0.2 ms of CPU on a small VM): at rest a speaker then wakes
// once per interval, however many peers it watches.
type socket struct {
	fd  int
	is4 bool
	// dual is an IPv6 socket bound to the unspecified address, which
	// reaches IPv4 peers too (at their IPv4-mapped addresses).
	dual bool
	buf  []byte
	oob  []byte
}

// maxDrain bounds the datagrams read in one wakeup: a flood of the port
// costs at most this much work per interval; the kernel drops the rest.
const maxDrain = 1024

func listen(bind netip.Addr, port int) (*socket, error) {
	if !bind.IsValid() {
		return nil, errors.New("no address to bind")
	}
	bind = bind.Unmap()
	s := &socket{is4: bind.Is4(), dual: bind.Is6() && bind.IsUnspecified(), buf: make([]byte, 512), oob: make([]byte, unix.CmsgSpace(16))}
	family := unix.AF_INET6
	zone, err := zoneIndex(bind)
	if err != nil {
		return nil, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: port, Addr: bind.As16(), ZoneId: zone}
	if s.is4 {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: bind.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	if s.dual {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("reaching IPv4 peers from %s: %w", bind, err)
		}
	}
	if err := timestamped(fd); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	s.fd = fd
	return s, nil
}

// sendTo sends b to dst, without blocking: a full send buffer drops it,
// like a lost packet.
func (s *socket) sendTo(b []byte, dst netip.AddrPort) error {
	a := dst.Addr().Unmap()
	var sa unix.Sockaddr
	switch {
	case s.is4 && a.Is4():
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.As4()}
	case !s.is4 && (a.Is6() || s.dual):
		zone, err := zoneIndex(a)
		if err != nil {
			return err
		}
		// As16 of an IPv4 address is its IPv4-mapped form.
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16(), ZoneId: zone}
	default:
		return fmt.Errorf("%s is not of the heartbeat socket's family", a)
	}
	return unix.Sendto(s.fd, b, unix.MSG_DONTWAIT, sa)
}

// zoneIndex is the interface index of a link-local address's zone (fe80::1%eth0).
func zoneIndex(a netip.Addr) (uint32, error) {
	z := a.Zone()
	if z == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return 0, fmt.Errorf("the zone of %s: %w", a, err)
	}
	return uint32(ifi.Index), nil
}

// drain reads the datagrams queued so far and calls fn with each and the
// time it arrived, read from the kernel's timestamp (now if it has none);
// fn must not keep b.
func (s *socket) drain(now time.Time, fn func(b []byte, at time.Time)) error {
	return drainFD(s.fd, s.buf, s.oob, now, fn)
}

// drainFD reads what is queued on the non-blocking socket fd, at most
// maxDrain datagrams, into buf (oob holds the arrival time; see arrival).
func drainFD(fd int, buf, oob []byte, now time.Time, fn func(b []byte, at time.Time)) error {
	for range maxDrain {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		}
		fn(buf[:n], arrival(now, oob[:oobn]))
	}
	return nil
}

// timestamped asks the kernel to stamp each datagram fd receives with its
// arrival time (SO_TIMESTAMPNS), which drainFD reads.
func timestamped(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("asking for arrival times: %w", err)
	}
	return nil
}

// arrival converts the kernel's receive timestamp (wall clock) in oob to
// a time on now's monotonic clock, which the detector compares.
func arrival(now time.Time, oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		var ts unix.Timespec
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS ||
			binary.Read(bytes.NewReader(m.Data), binary.NativeEndian, &ts) != nil {
			continue
		}
		age := time.Duration(now.UnixNano() - ts.Nano())
		if age < 0 || age > time.Minute {
			return now // the wall clock stepped: trust the read time
		}
		return now.Add(-age)
	}
	return now
}

func (s *socket) close() error { return unix.Close(s.fd) }
