package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// A heartbeat is one UDP datagram:
//
//	magic "PHB" | version 1 | sequence (8 bytes, big endian) |
//	name length (1 byte) | node name | HMAC-SHA256 of all before, first 16 bytes
//
// The sequence grows with every heartbeat a speaker sends and starts from
// its start time in nanoseconds, so that a receiver can refuse replayed
// heartbeats even across the sender's restarts. The HMAC key is derived
// from the memberlist key: a node outside the cluster can neither forge a
// heartbeat (and keep a dead node alive) nor read anything from one.
const (
	magic      = "PHB"
	version    = 1
	macLen     = 16
	headerLen  = len(magic) + 1 + 8 + 1
	maxNameLen = 253 // a Kubernetes node name is a DNS subdomain
)

// ErrMalformed and ErrBadMAC are the reasons a datagram is not a
// heartbeat.
var (
	ErrMalformed = errors.New("not a heartbeat")
	ErrBadMAC    = errors.New("heartbeat not authenticated by the cluster's key")
)

// deriveKey derives the heartbeat key from the memberlist key, so that the
// two protocols never share a key.
func deriveKey(memberlistKey []byte) []byte {
	m := hmac.New(sha256.New, memberlistKey)
	m.Write([]byte("pharos heartbeat v1"))
	return m.Sum(nil)
}

// encode returns the heartbeat of node with sequence seq.
func encode(key []byte, node string, seq uint64) []byte {
	b := make([]byte, 0, headerLen+len(node)+macLen)
	b = append(b, magic...)
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(len(node)))
	b = append(b, node...)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b)[:len(b)+macLen]
}

// decode checks a datagram and returns its sender and sequence.
func decode(key, b []byte) (node string, seq uint64, err error) {
	if len(b) < headerLen+1+macLen || string(b[:len(magic)]) != magic || b[len(magic)] != version {
		return "", 0, ErrMalformed
	}
	n := int(b[headerLen-1])
	if n == 0 || n > maxNameLen || len(b) != headerLen+n+macLen {
		return "", 0, ErrMalformed
	}
	body := b[:headerLen+n]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:macLen], b[headerLen+n:]) {
		return "", 0, ErrBadMAC
	}
	return string(body[headerLen:]), binary.BigEndian.Uint64(b[len(magic)+1:]), nil
}
