package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	for pkg, name := range map[string]string{"./test/lab": "lab", "./controller": "controller", "./speaker": "speaker", "./kubectl-pharos": "kubectl-pharos"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bins, name), pkg)
		cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), env...)
		cmd.Stdout = os.Stderr
		if _, err := runHelper(cmd, os.Stderr); err != nil {
			return Options{}, fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	kube, err := EnsureKubeBins(repoRoot, env, os.Stderr)
	if err != nil {
		return Options{}, err
	}
	return Options{
		KubeBinDir:       kube,
		LabBinary:        filepath.Join(bins, "lab"),
		ControllerBinary: filepath.Join(bins, "controller"),
		SpeakerBinary:    filepath.Join(bins, "speaker"),
		PluginBinary:     filepath.Join(bins, "kubectl-pharos"),
		RepoRoot:         repoRoot,
		Out:              os.Stderr,
	}, nil
}

// EnsureKubeBins runs hack/kube-bins/ensure.sh of repoRoot, which builds
// the pinned Kubernetes binaries on first use, and returns the directory
// that holds them and etcd. env is added to its environment (nil for
// none); its progress goes to progress as it comes (nil for nowhere). If
// it fails, the error says why in the script's own words.
func EnsureKubeBins(repoRoot string, env []string, progress io.Writer) (string, error) {
	const script = "hack/kube-bins/ensure.sh"
	path := filepath.Join(repoRoot, filepath.FromSlash(script))
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s not found in %s: run from the repository root", script, repoRoot)
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	out, err := runHelper(cmd, progress)
	if err != nil {
		return "", fmt.Errorf("building the Kubernetes binaries (%s): %w", script, err)
	}
	return strings.TrimSpace(out), nil
}

// helperStderrMax bounds how much of a failed helper's stderr (its end) an
// error carries.
const helperStderrMax = 4 << 10

// runHelper runs cmd and returns what it printed on stdout unless
// cmd.Stdout is set. Its stderr is copied to progress (if not nil) as it
// comes, and if it fails, the error ends with the last of that stderr: the
// helper's own message rather than only "exit status 1".
func runHelper(cmd *exec.Cmd, progress io.Writer) (string, error) {
	var stdout bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	tail := &tailWriter{max: helperStderrMax}
	cmd.Stderr = tail
	if progress != nil {
		cmd.Stderr = io.MultiWriter(progress, tail)
	}
	if err := cmd.Run(); err != nil {
		if msg := tail.String(); msg != "" {
			sep := ": "
			if strings.Contains(msg, "\n") {
				sep = "; its output ends with:\n"
			}
			return stdout.String(), fmt.Errorf("%w%s%s", err, sep, msg)
		}
		return stdout.String(), err
	}
	return stdout.String(), nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max       int
	buf       []byte
	truncated bool
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
		w.truncated = true
	}
	return len(p), nil
}

// String is what it kept, trimmed, from the start of a line if it dropped
// the beginning.
func (w *tailWriter) String() string {
	s := string(w.buf)
	if w.truncated {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "...\n" + s
	}
	return strings.TrimSpace(s)
}
