package v1beta1_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinariesShareOnlyAPIAndInternal: the contract between the controller
// and the speaker lives in this package (wellknown.go), so neither binary
// imports the other's packages. The speaker once imported
// controller/allocation for one annotation name, which also ran that
// package's metric registrations in the speaker.
func TestBinariesShareOnlyAPIAndInternal(t *testing.T) {
	const mod = "github.com/pharos-lb/pharos/"
	for bin, forbidden := range map[string]string{
		"speaker":    mod + "controller",
		"controller": mod + "speaker",
	} {
		out, err := exec.Command("go", "list", "-deps", mod+bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", bin, err, out)
		}
		for _, pkg := range strings.Fields(string(out)) {
			if pkg == forbidden || strings.HasPrefix(pkg, forbidden+"/") {
				t.Errorf("the %s binary imports %s: move what it needs into api/v1beta1 or internal/", bin, pkg)
			}
		}
	}
}
