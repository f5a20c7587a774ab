package cluster

import (
	"context"
	"fmt"
	"time"
)

// speakerPprofAddr is where the speakers serve Go's profiles when a bench
// gives them SpeakerPprofArgs (on the node's loopback, inside its
// namespace).
const speakerPprofAddr = "127.0.0.1:7476"

// SpeakerPprofArgs are the speaker arguments (Options.SpeakerArgs) that
// let SpeakerHeapProfile read a speaker's heap.
var SpeakerPprofArgs = []string{"--pprof-bind-address", speakerPprofAddr}

// SpeakerHeapProfile writes the heap profile of node's speaker (started
// with SpeakerPprofArgs) to file, for go tool pprof, and the runtime's own
// account of its memory (MemStats: heap, stacks, released) to file.txt.
func (l *Lab) SpeakerHeapProfile(ctx context.Context, node, file string) error {
	url := "http://" + speakerPprofAddr + "/debug/pprof/heap"
	if out, err := l.Exec(ctx, node, "curl", "-sfo", file, url); err != nil {
		return fmt.Errorf("heap profile of %s's speaker: %w: %s", node, err, out)
	}
	if out, err := l.Exec(ctx, node, "curl", "-sfo", file+".txt", url+"?debug=1"); err != nil {
		return fmt.Errorf("memory statistics of %s's speaker: %w: %s", node, err, out)
	}
	return nil
}

// SpeakerCPUProfile records node's speaker (started with SpeakerPprofArgs)
// for d and writes the CPU profile to file, for go tool pprof.
func (l *Lab) SpeakerCPUProfile(ctx context.Context, node, file string, d time.Duration) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", speakerPprofAddr, int(d.Seconds()))
	if out, err := l.Exec(ctx, node, "curl", "-sfo", file, url); err != nil {
		return fmt.Errorf("CPU profile of %s's speaker: %w: %s", node, err, out)
	}
	return nil
}
