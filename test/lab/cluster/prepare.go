package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Prepare builds the lab command and Pharos's binaries into outDir/bin and
// the pinned Kubernetes binaries (cached), and returns Options that use
// them; env is added to the builds' environment (nil for none).
func Prepare(repoRoot, outDir string, env []string) (Options, error) {
	bins := filepath.Join(outDir, "bin")
	for pkg, name := range map[string]string{"./test/lab": "lab", "./controller": "controller", "./speaker": "speaker"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bins, name), pkg)
		cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return Options{}, fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	ensure := exec.Command(filepath.Join(repoRoot, "hack", "kube-bins", "ensure.sh"))
	ensure.Env, ensure.Stderr = append(os.Environ(), env...), os.Stderr
	kube, err := ensure.Output()
	if err != nil {
		return Options{}, fmt.Errorf("hack/kube-bins/ensure.sh: %w", err)
	}
	return Options{
		KubeBinDir:       strings.TrimSpace(string(kube)),
		LabBinary:        filepath.Join(bins, "lab"),
		ControllerBinary: filepath.Join(bins, "controller"),
		SpeakerBinary:    filepath.Join(bins, "speaker"),
		RepoRoot:         repoRoot,
		Out:              os.Stderr,
	}, nil
}
