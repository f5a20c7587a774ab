package heartbeat

import (
	"bytes"
	"errors"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	key := deriveKey([]byte("0123456789abcdef"))
	b := encode(key, "plab-n1", 42)
	node, seq, err := decode(key, b)
	if err != nil || node != "plab-n1" || seq != 42 {
		t.Fatalf("decode: %q %d %v", node, seq, err)
	}
	other := deriveKey([]byte("fedcba9876543210"))
	if _, _, err := decode(other, b); !errors.Is(err, ErrBadMAC) {
		t.Errorf("another cluster's key: %v, want ErrBadMAC", err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, _, err := decode(key, c); err == nil {
			t.Errorf("byte %d flipped: accepted", i)
		}
	}
	for _, bad := range [][]byte{nil, []byte("PHB"), b[:len(b)-1], append(bytes.Clone(b), 0)} {
		if _, _, err := decode(key, bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	key := deriveKey([]byte("0123456789abcdef"))
	f.Add(encode(key, "n1", 1))
	f.Add([]byte("PHB\x01\x00\x00\x00\x00\x00\x00\x00\x01\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		node, seq, err := decode(key, b)
		if err != nil {
			return
		}
		// Only what encode makes is accepted.
		if !bytes.Equal(encode(key, node, seq), b) {
			t.Fatalf("accepted %x, which encodes as %x", b, encode(key, node, seq))
		}
	})
}
