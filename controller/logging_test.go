package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// lockedBuffer is a bytes.Buffer safe for the loggers' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOneLogger: client-go's klog lines (leader election, reflectors) and
// controller-runtime's come out of the one logger the flags configure, as
// JSON lines, and klog's verbose lines stay quiet at the default
// verbosity.
func TestOneLogger(t *testing.T) {
	var out lockedBuffer
	setLoggers(zap.New(zap.WriteTo(&out)))
	t.Cleanup(klog.ClearLogger)

	klog.InfoS("successfully acquired lease", "lease", "pharos-system/pharos-controller")
	klog.Warningf("reflector: watch of %s ended", "*v1.Service")
	klog.V(4).InfoS("a verbose client-go line")
	ctrl.Log.WithName("setup").Info("starting manager")
	klog.Flush()

	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		msg, _ := entry["msg"].(string)
		msgs = append(msgs, msg)
	}
	want := []string{"successfully acquired lease", "reflector: watch of *v1.Service ended", "starting manager"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("logged %q, want %q", msgs, want)
	}
}
