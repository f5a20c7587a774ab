package main

import (
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// The controller starts with either forwarding mode, and refuses anything
// else with a message that names the flag, the value and the valid modes.
func TestCheckForwarding(t *testing.T) {
	for _, mode := range v1beta1.ForwardingModes {
		if err := checkForwarding(mode); err != nil {
			t.Errorf("--forwarding=%s refused: %v", mode, err)
		}
	}
	for _, mode := range []string{"", "Direct", "kubeproxy", "ipvs"} {
		err := checkForwarding(mode)
		if err == nil {
			t.Errorf("--forwarding=%q accepted", mode)
			continue
		}
		for _, want := range []string{"--forwarding", `"` + mode + `"`, "kube-proxy", "nodeport", "direct"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("--forwarding=%q: error %q does not say %q", mode, err, want)
			}
		}
	}
}
