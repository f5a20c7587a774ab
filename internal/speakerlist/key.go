package speakerlist

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// KeySecretField is the field of the memberlist Secret that holds the key.
const KeySecretField = "key"

// ParseKey reads a memberlist key as stored in the Secret: 16, 24 or 32
// bytes (AES-128, -192 or -256), raw or base64-encoded.
func ParseKey(stored []byte) ([]byte, error) {
	if dec, err := base64.StdEncoding.DecodeString(string(stored)); err == nil && validKeyLen(len(dec)) {
		return dec, nil
	}
	if validKeyLen(len(stored)) {
		return stored, nil
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("no key yet")
	}
	return nil, fmt.Errorf("the key must hold 16, 24 or 32 bytes (raw or base64), not %d", len(stored))
}

// NewKey returns a fresh 32-byte key, base64-encoded as it is stored.
func NewKey() ([]byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(raw)), nil
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
