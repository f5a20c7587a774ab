package netnstest

import (
	"os/exec"
	"strings"
	"testing"
)

// Run runs a command (ip, nft, sysctl, ...) that builds or judges a test's
// namespaces, and fails the test with its output if it fails.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
