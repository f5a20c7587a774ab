package bgpannounce

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// bgpMessage frames a BGP message (RFC 4271 section 4.1).
func bgpMessage(typ byte, body []byte) []byte {
	m := make([]byte, 19, 19+len(body))
	for i := range 16 {
		m[i] = 0xff
	}
	binary.BigEndian.PutUint16(m[16:], uint16(19+len(body)))
	m[18] = typ
	return append(m, body...)
}

// readMessage reads one BGP message and returns its type.
func readMessage(c net.Conn) (byte, error) {
	h := make([]byte, 19)
	if _, err := io.ReadFull(c, h); err != nil {
		return 0, err
	}
	body := make([]byte, int(binary.BigEndian.Uint16(h[16:]))-19)
	_, err := io.ReadFull(c, body)
	return h[18], err
}

// TestMalformedUpdateDoesNotCrash: a peer that sends an UPDATE whose path
// attribute length runs past the message gets GoBGP's NOTIFICATION (UPDATE
// message error), the speaker keeps running, reports the error in the
// session, and keeps applying its desired state. The peer is a few lines
// of raw BGP on loopback: the point is the malformed bytes, which no real
// router sends.
func TestMalformedUpdateDoesNotCrash(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	notified := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if typ, err := readMessage(c); err != nil || typ != 1 {
			return // not an OPEN
		}
		open := []byte{4, 0xfc, 0x01, 0, 9, 198, 18, 0, 254, 0} // version 4, AS 64513, hold 9 s, ID, no options
		_, _ = c.Write(bgpMessage(1, open))
		_, _ = c.Write(bgpMessage(4, nil))
		for { // until its KEEPALIVE: the session is established
			typ, err := readMessage(c)
			if err != nil {
				return
			}
			if typ == 4 {
				break
			}
		}
		// Withdrawn length 0, then a path attribute length of 200 over 3
		// bytes of attributes.
		_, _ = c.Write(bgpMessage(2, []byte{0, 0, 0, 200, 0x40, 1, 1}))
		for {
			h := make([]byte, 19)
			if _, err := io.ReadFull(c, h); err != nil {
				return
			}
			body := make([]byte, int(binary.BigEndian.Uint16(h[16:]))-19)
			if _, err := io.ReadFull(c, body); err != nil {
				return
			}
			if h[18] == 3 {
				notified <- body
				return
			}
		}
	}()

	b := New(Options{Node: "n1", Addresses: nil})
	defer b.Close()
	snap := speaker.Snapshot{
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}},
		BGPPeers: []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "raw"}, Spec: v1beta1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64513, PeerAddress: "127.0.0.1", PeerPort: uint16(port),
			ConnectTime: &metav1.Duration{Duration: time.Second}}}},
	}
	b.Apply(speaker.Compute(snap))
	select {
	case body := <-notified:
		if len(body) < 2 || body[0] != 3 {
			t.Errorf("NOTIFICATION %v, want code 3 (UPDATE message error)", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no NOTIFICATION for the malformed UPDATE within 30 s")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ss := b.Sessions(context.Background())
		// GoBGP's own words for the session drop ("notification-sent code
		// 3(update) ...") or the hook's ("NOTIFICATION 3/1 ...: UPDATE
		// message error"), whichever came last.
		if len(ss) == 1 && strings.Contains(strings.ToLower(ss[0].LastError), "update") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions %+v, want the UPDATE error as last error", ss)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Still serving: a change of desired state is applied.
	b.Apply(speaker.Compute(speaker.Snapshot{Nodes: snap.Nodes}))
	if ss := b.Sessions(context.Background()); len(ss) != 0 {
		t.Errorf("sessions %+v after the peer was removed", ss)
	}
}
