package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
)

// TestDockerfileBuildsTheSameImage builds the Dockerfile's final stage
// with buildah bud, as docker would, and compares the result with the
// archive hack/image built: the same config (user, entrypoint, cmd, env,
// labels with the same build arguments) and the same files (names, types,
// modes, owners, contents). The build stage needs golang:1.26 from a
// registry, which this machine cannot reach, so it is replaced by one
// that holds the archive's own binaries in /out/, where the real build
// stage writes them; TestDockerfileIsTheSpec checks that stage. Needs
// buildah and root: skipped without them, unless PHAROS_REQUIRE_IMAGE=1.
func TestDockerfileBuildsTheSameImage(t *testing.T) {
	path := archivePath(t)
	if path == "" {
		t.Skip("no _output/image/pharos.tar: make image-archive builds it (PHAROS_REQUIRE_IMAGE=1 makes this test build it)")
	}
	if _, err := exec.LookPath("buildah"); err != nil || os.Geteuid() != 0 {
		if requireImage() {
			t.Fatalf("PHAROS_REQUIRE_IMAGE=1, but this test needs buildah (hack/host-deps.sh image) and root")
		}
		t.Skip("needs buildah and root")
	}
	want, err := ociimage.Open(path)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The final stage's text: from the last FROM to the end.
	lines := strings.Split(string(raw), "\n")
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "FROM ") {
			last = i
		}
	}
	final := strings.Join(lines[last:], "\n")
	from := regexp.MustCompile(`(?m)^COPY --from=(\S+) `).FindStringSubmatch(final)
	if from == nil {
		t.Fatal("the final stage copies from no stage")
	}
	dir := t.TempDir()
	if err := want.Unpack(filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch AS " + from[1] + "\nCOPY out/ /out/\n" + final
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}

	storage := t.TempDir()
	buildah := func(args ...string) {
		t.Helper()
		full := append([]string{"--storage-driver", "vfs", "--root", filepath.Join(storage, "root"), "--runroot", filepath.Join(storage, "runroot")}, args...)
		if out, err := exec.Command("buildah", full...).CombinedOutput(); err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bud := []string{"bud", "--identity-label=false", "-f", filepath.Join(dir, "Dockerfile"), "-t", "localhost/pharos-dockerfile:test"}
	// The same build arguments as the archive's labels say it had.
	for k, v := range spec.Labels {
		if arg, ok := strings.CutPrefix(v, "${"); ok && strings.HasSuffix(arg, "}") {
			bud = append(bud, "--build-arg", strings.TrimSuffix(arg, "}")+"="+want.Config.Config.Labels[k])
		}
	}
	buildah(append(bud, dir)...)
	built := filepath.Join(dir, "dockerfile.tar")
	buildah("push", "localhost/pharos-dockerfile:test", "oci-archive:"+built+":localhost/pharos-dockerfile:test")
	got, err := ociimage.Open(built)
	if err != nil {
		t.Fatal(err)
	}

	g, w := got.Config, want.Config
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"os", g.OS, w.OS},
		{"architecture", g.Architecture, w.Architecture},
		{"user", g.Config.User, w.Config.User},
		{"entrypoint", g.Config.Entrypoint, w.Config.Entrypoint},
		{"cmd", g.Config.Cmd, w.Config.Cmd},
		{"env", g.Config.Env, w.Config.Env},
		{"working directory", g.Config.WorkingDir, w.Config.WorkingDir},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: the Dockerfile's image has %q, hack/image's %q", c.what, c.got, c.want)
		}
	}
	if !maps.Equal(g.Config.Labels, w.Config.Labels) {
		t.Errorf("labels: the Dockerfile's image has %v, hack/image's %v", g.Config.Labels, w.Config.Labels)
	}
	gf, wf := files(t, got), files(t, want)
	for _, name := range slices.Sorted(maps.Keys(wf)) {
		if gf[name] != wf[name] {
			t.Errorf("%s: the Dockerfile's image has %q, hack/image's %q", name, gf[name], wf[name])
		}
	}
	for name := range gf {
		if _, ok := wf[name]; !ok {
			t.Errorf("%s is in the Dockerfile's image only", name)
		}
	}
	if !t.Failed() {
		t.Logf("the Dockerfile's final stage gives %s, with the same config and files as hack/image's %s", got.ManifestDigest, want.ManifestDigest)
	}
}

// files describes each entry of an image but its times.
func files(t *testing.T, im *ociimage.Image) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := im.Walk(func(_ int, name string, hdr *tar.Header, r io.Reader) error {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		out[name] = fmt.Sprintf("type %c mode %o owner %d:%d sha256 %s", hdr.Typeflag, hdr.Mode&0o7777, hdr.Uid, hdr.Gid, hex.EncodeToString(h.Sum(nil))[:16])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
