package speakerlist

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	raw16 := bytes.Repeat([]byte{7}, 16)
	tests := []struct {
		name    string
		stored  []byte
		wantLen int
		err     string
	}{
		{"raw 16 bytes", raw16, 16, ""},
		{"base64 of 32 bytes", []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))), 32, ""},
		{"base64 of 24 bytes", []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 24))), 24, ""},
		// 32 characters that also decode as base64 (to 24 bytes): base64 wins.
		{"32 base64 characters", []byte(strings.Repeat("A", 32)), 24, ""},
		{"empty (not generated yet)", nil, 0, "no key yet"},
		{"5 bytes", []byte("hello"), 0, "16, 24 or 32 bytes"},
		{"base64 of 13 bytes (20 characters)", []byte(base64.StdEncoding.EncodeToString(make([]byte, 13))), 0, "not 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.stored)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseKey = %v, %v; want an error with %q", k, err, tc.err)
				}
				return
			}
			if err != nil || len(k) != tc.wantLen {
				t.Fatalf("ParseKey = %d bytes, %v; want %d", len(k), err, tc.wantLen)
			}
		})
	}
}

func TestNewKeyParses(t *testing.T) {
	a, _ := NewKey()
	b, _ := NewKey()
	ka, err := ParseKey(a)
	if err != nil || len(ka) != 32 {
		t.Fatalf("a new key parses to %d bytes, %v", len(ka), err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two new keys are equal")
	}
}
