// Package image checks that Pharos's image is described the same way
// everywhere: the Dockerfile (docker, the release), hack/image (buildah,
// make image-archive) and the chart, which runs its paths as its user. All
// three are compared with hack/image/ociimage.Pharos. An archive that
// make image-archive built (_output/image/pharos.tar) is opened and
// checked file by file; with PHAROS_REQUIRE_IMAGE=1 the test builds it
// first (buildah, root) and fails if it cannot.
//
// helm comes from $HELM, else from the tools directory that `make tools`
// fills.
package image

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
)

const module = "github.com/pharos-lb/pharos"

var spec = ociimage.Pharos

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

// parseDockerfile returns the instructions of each stage (the first of
// each is its FROM).
func parseDockerfile(t *testing.T, text string) [][]instruction {
	t.Helper()
	var stages [][]instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// words splits as a shell does: blanks separate, quotes group (and go).
func words(s string) []string {
	var out []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

// TestDockerfileIsTheSpec: the Dockerfile's final stage is the image that
// ociimage.Pharos describes and hack/image builds with buildah: FROM
// scratch, the same files from the same packages built the same way, the
// same USER, ENTRYPOINT and LABELs, and nothing else.
func TestDockerfileIsTheSpec(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(raw))
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stages; want a build stage and the image", len(stages))
	}
	final := stages[len(stages)-1]
	if from := words(final[0].args); len(from) != 1 || from[0] != spec.Base {
		t.Errorf("Dockerfile:%d: the final stage is FROM %s; want FROM %s", final[0].line, final[0].args, spec.Base)
	}
	// The build stage that the final stage copies from.
	stageNames := map[string][]instruction{}
	for _, s := range stages[:len(stages)-1] {
		if f := words(s[0].args); len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
			stageNames[f[len(f)-1]] = s
		}
	}

	var (
		copies     = map[string]string{} // destination -> source
		copyOrder  []string
		user       string
		entrypoint []string
		labels     = map[string]string{}
		args       = map[string]string{}
		buildFrom  string
	)
	for _, in := range final[1:] {
		switch in.cmd {
		case "COPY":
			w := words(in.args)
			var from string
			for len(w) > 0 && strings.HasPrefix(w[0], "--") {
				if v, ok := strings.CutPrefix(w[0], "--from="); ok {
					from = v
				} else {
					t.Errorf("Dockerfile:%d: COPY %s: hack/image copies with owner 0:0 and mode 0755; say so in both or in neither", in.line, w[0])
				}
				w = w[1:]
			}
			if len(w) != 2 || from == "" {
				t.Errorf("Dockerfile:%d: COPY %s: want COPY --from=STAGE SOURCE DEST, one file each", in.line, in.args)
				continue
			}
			buildFrom = from
			copies[w[1]] = w[0]
			copyOrder = append(copyOrder, w[1])
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Errorf("Dockerfile:%d: ENTRYPOINT %s: not the exec (JSON) form: %v", in.line, in.args, err)
			}
		case "LABEL":
			for _, kv := range words(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Errorf("Dockerfile:%d: LABEL %q is not key=value", in.line, kv)
				}
				labels[k] = v
			}
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		default:
			// CMD, RUN (no shell to run it), ENV, WORKDIR, VOLUME ...:
			// hack/image sets none of them.
			t.Errorf("Dockerfile:%d: %s in the final stage: hack/image's image has none (add it to ociimage.Pharos and hack/image, or drop it)", in.line, in.cmd)
		}
	}
	if !slices.Equal(copyOrder, spec.Paths()) {
		t.Errorf("the Dockerfile copies %v; ociimage.Pharos has %v", copyOrder, spec.Paths())
	}
	if user != spec.User {
		t.Errorf("Dockerfile USER %q; ociimage.Pharos %q", user, spec.User)
	}
	if !slices.Equal(entrypoint, spec.Entrypoint) {
		t.Errorf("Dockerfile ENTRYPOINT %q; ociimage.Pharos %q", entrypoint, spec.Entrypoint)
	}
	for k, v := range spec.Labels {
		got, ok := labels[k]
		// ${VERSION} and $VERSION are the same to Docker.
		if !ok || (got != v && strings.ReplaceAll(strings.ReplaceAll(v, "{", ""), "}", "") != got) {
			t.Errorf("Dockerfile LABEL %s=%q; ociimage.Pharos %q", k, got, v)
		}
	}
	for k := range labels {
		if _, ok := spec.Labels[k]; !ok {
			t.Errorf("Dockerfile LABEL %s is not in ociimage.Pharos (hack/image does not set it)", k)
		}
	}
	for k, v := range spec.BuildArgs {
		if args[k] != v {
			t.Errorf("Dockerfile ARG %s=%q in the final stage; ociimage.Pharos defaults it to %q", k, args[k], v)
		}
	}

	// The build stage builds each file from its package, the same way.
	build, ok := stageNames[buildFrom]
	if !ok {
		t.Fatalf("the final stage copies from %q, which is no stage of the Dockerfile", buildFrom)
	}
	var goBuild []string
	for _, in := range build {
		if w := words(in.args); in.cmd == "RUN" && slices.Contains(w, "go") && slices.Contains(w, "build") {
			goBuild = w
		}
	}
	if goBuild == nil {
		t.Fatalf("stage %s has no RUN ... go build", buildFrom)
	}
	for _, want := range append(append(slices.Clone(spec.GoEnv), spec.GoFlags...), "GOARCH=$TARGETARCH") {
		if !slices.Contains(goBuild, want) {
			t.Errorf("the Dockerfile's go build (%q) lacks %q, which hack/image builds with", goBuild, want)
		}
	}
	out := ""
	if i := slices.Index(goBuild, "-o"); i >= 0 && i+1 < len(goBuild) {
		out = goBuild[i+1]
	}
	for _, f := range spec.Files {
		if !slices.Contains(goBuild, f.Package) {
			t.Errorf("the Dockerfile's go build does not build %s", f.Package)
		}
		if want := strings.TrimSuffix(out, "/") + "/" + filepath.Base(f.Package); copies[f.Path] != want {
			t.Errorf("the Dockerfile copies %q to %s; the build writes %s there", copies[f.Path], f.Path, want)
		}
	}
}

func helmBin(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no $HELM and no home directory to find helm in: %v", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "pharos", "tools", "bin", "helm")
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		t.Fatalf("helm not found at %s: run `make tools`, or set HELM to a helm binary", path)
	}
	return path
}

// podSpecs renders the chart and returns the pod specs of its workloads,
// by "Kind/name".
func podSpecs(t *testing.T, args ...string) map[string]corev1.PodSpec {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(helmBin(t), append([]string{"template", "pharos", filepath.Join(repoRoot(), "charts", "pharos"), "-n", "pharos-system"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(dir, "cache"), "HELM_CONFIG_HOME="+filepath.Join(dir, "config"), "HELM_DATA_HOME="+filepath.Join(dir, "data"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %q: %v\n%s", args, err, stderr.String())
	}
	specs := map[string]corev1.PodSpec{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var doc struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				corev1.PodSpec `json:",inline"`
				Template       struct {
					Spec corev1.PodSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch doc.Kind {
		case "Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet":
			specs[doc.Kind+"/"+doc.Metadata.Name] = doc.Spec.Template.Spec
		case "Pod":
			specs[doc.Kind+"/"+doc.Metadata.Name] = doc.Spec.PodSpec
		case "CronJob":
			t.Errorf("CronJob/%s: this test does not look into CronJobs yet", doc.Metadata.Name)
		}
	}
	return specs
}

// TestChartRunsTheImage: every container of the chart that uses Pharos's
// image runs one of its files (nothing else is in it: no shell), with a
// read-only root filesystem, as the image's user or, for the speaker
// alone, explicitly as root.
func TestChartRunsTheImage(t *testing.T) {
	var values struct {
		Image struct {
			Repository string `json:"repository"`
		} `json:"image"`
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "charts", "pharos", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if values.Image.Repository != ociimage.Repository {
		t.Errorf("values.yaml image.repository %q; the image is published as %s", values.Image.Repository, ociimage.Repository)
	}
	imageUID, imageGID, err := ociimage.ParseUser(spec.User)
	if err != nil {
		t.Fatal(err)
	}
	run := map[string]bool{}
	for name, args := range map[string][]string{
		"defaults": nil,
		"full":     {"-f", filepath.Join(repoRoot(), "test", "chart", "testdata", "full-values.yaml")},
		"pools":    {"--set", "pools[0].addresses[0]=198.18.100.0/24"},
		"upgrade":  {"--is-upgrade", "--set", "pools[0].addresses[0]=198.18.100.0/24"},
		"direct":   {"--set", "forwarding.mode=direct"},
	} {
		t.Run(name, func(t *testing.T) {
			for workload, ps := range podSpecs(t, args...) {
				for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
					if !strings.HasPrefix(c.Image, ociimage.Repository+":") {
						continue
					}
					where := workload + " container " + c.Name
					if len(c.Command) == 0 {
						t.Errorf("%s: no command: it would run the image's entrypoint %q; say which binary", where, spec.Entrypoint)
						continue
					}
					if !slices.Contains(spec.Paths(), c.Command[0]) {
						t.Errorf("%s runs %s, which is not in the image (it has %v, and no shell)", where, c.Command[0], spec.Paths())
					}
					run[c.Command[0]] = true
					csc, psc := c.SecurityContext, ps.SecurityContext
					if csc == nil {
						csc = &corev1.SecurityContext{}
					}
					if psc == nil {
						psc = &corev1.PodSecurityContext{}
					}
					if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
						t.Errorf("%s: readOnlyRootFilesystem is not true", where)
					}
					uid, gid := imageUID, imageGID
					switch {
					case csc.RunAsUser != nil:
						uid = *csc.RunAsUser
					case psc.RunAsUser != nil:
						uid = *psc.RunAsUser
					}
					if uid != imageUID {
						gid = 0
					}
					switch {
					case csc.RunAsGroup != nil:
						gid = *csc.RunAsGroup
					case psc.RunAsGroup != nil:
						gid = *psc.RunAsGroup
					}
					nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
					switch {
					case uid == 0 && c.Command[0] == "/speaker" && csc.RunAsNonRoot != nil && !*csc.RunAsNonRoot:
						// Raw ARP/NDP sockets need CAP_NET_RAW in the
						// effective set, which only root gets from a
						// container's capabilities (speaker.yaml).
					case uid == 0:
						t.Errorf("%s runs as root; only the speaker does, and says so (runAsNonRoot: false)", where)
					case uid != imageUID || gid != imageGID:
						t.Errorf("%s runs as %d:%d; the image's user is %s", where, uid, gid, spec.User)
					case !nonRoot:
						t.Errorf("%s runs as %d without runAsNonRoot", where, uid)
					}
				}
			}
		})
	}
	for _, want := range []string{"/controller", "/speaker"} {
		if !run[want] {
			t.Errorf("no container of the chart runs %s", want)
		}
	}
}

// requireImage is PHAROS_REQUIRE_IMAGE=1: build and check the image
// rather than skip what needs it.
func requireImage() bool { return os.Getenv("PHAROS_REQUIRE_IMAGE") == "1" }

var (
	buildOnce  sync.Once
	buildError error
)

// archivePath is the archive to check: built first (once) with
// PHAROS_REQUIRE_IMAGE=1; "" if there is none.
func archivePath(t *testing.T) string {
	t.Helper()
	path := filepath.Join(repoRoot(), "_output", "image", "pharos.tar")
	if requireImage() {
		buildOnce.Do(func() {
			cmd := exec.Command("go", "run", "./hack/image", "-out", path)
			cmd.Dir = repoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildError = fmt.Errorf("%w\n%s", err, out)
			}
		})
		if buildError != nil {
			t.Fatalf("PHAROS_REQUIRE_IMAGE=1 and the image does not build (make image-archive): %v", buildError)
		}
		return path
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	t.Logf("checking %s, built %s (make image-archive rebuilds it; PHAROS_REQUIRE_IMAGE=1 makes this test build it)", path, fi.ModTime().Format("2006-01-02 15:04:05"))
	return path
}

// TestArchive opens the OCI archive that hack/image wrote, as a runtime
// would (index, manifest, config, layers, each against its digest), and
// checks that it is ociimage.Pharos: its config's user, entrypoint and
// labels, and its files: exactly the binaries (so no shell), each a
// static, stripped ELF executable owned by root, built without cgo and
// with -trimpath, from its package.
func TestArchive(t *testing.T) {
	path := archivePath(t)
	if path == "" {
		t.Skip("no _output/image/pharos.tar: make image-archive builds it (PHAROS_REQUIRE_IMAGE=1 makes this test build it)")
	}
	im, err := ociimage.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(im.RefName, ociimage.Repository+":") {
		t.Logf("the archive names the image %q (not %s:TAG): the chart needs image.repository set to it", im.RefName, ociimage.Repository)
	}
	if im.RefName == "" || !strings.Contains(im.RefName, ":") {
		t.Errorf("the archive's image has no full name (index.json %s %q): k3s ctr images import would not name it", ociimage.AnnotationRefName, im.RefName)
	}
	c := im.Config
	if c.OS != "linux" {
		t.Errorf("os %q", c.OS)
	}
	if c.Config.User != spec.User {
		t.Errorf("user %q; want %q", c.Config.User, spec.User)
	}
	if !slices.Equal(c.Config.Entrypoint, spec.Entrypoint) || len(c.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q; want entrypoint %q and no cmd", c.Config.Entrypoint, c.Config.Cmd, spec.Entrypoint)
	}
	if !slices.Equal(c.Config.Env, spec.Env) {
		t.Errorf("env %q; want %q", c.Config.Env, spec.Env)
	}
	variable := spec.VariableLabels()
	for k, v := range spec.Labels {
		got, ok := c.Config.Labels[k]
		switch {
		case !ok:
			t.Errorf("label %s missing", k)
		case slices.Contains(variable, k):
			if got == "" || strings.Contains(got, "$") {
				t.Errorf("label %s=%q: the build argument of %q was not filled in", k, got, v)
			}
		case got != v:
			t.Errorf("label %s=%q; want %q", k, got, v)
		}
	}
	for k := range c.Config.Labels {
		if _, ok := spec.Labels[k]; !ok {
			t.Errorf("label %s is not in ociimage.Pharos (nor in the Dockerfile)", k)
		}
	}
	t.Logf("%s: %s, version %s, revision %s", im.RefName, im.ManifestDigest, c.Config.Labels["org.opencontainers.image.version"], c.Config.Labels["org.opencontainers.image.revision"])

	pkgOf := map[string]string{}
	for _, f := range spec.Files {
		pkgOf[f.Path] = f.Package
	}
	var seen []string
	err = im.Walk(func(_ int, name string, hdr *tar.Header, r io.Reader) error {
		if name == "/" && hdr.Typeflag == tar.TypeDir {
			return nil
		}
		seen = append(seen, name)
		pkg, ok := pkgOf[name]
		if !ok {
			t.Errorf("%s is in the image and not in ociimage.Pharos (%v)", name, spec.Paths())
			return nil
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode&0o7777 != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: type %c, mode %o, owner %d:%d; want a regular file, 0755, 0:0", name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		checkBinary(t, name, pkg, c.Architecture, bytes.NewReader(body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	want := slices.Sorted(slices.Values(spec.Paths()))
	if !slices.Equal(seen, want) {
		t.Errorf("the image holds %v; want exactly %v", seen, want)
	}
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/sh"} {
		if slices.Contains(seen, shell) {
			t.Errorf("the image has a shell: %s", shell)
		}
	}
}

// checkBinary checks one binary of the image.
func checkBinary(t *testing.T, name, pkg, arch string, r *bytes.Reader) {
	t.Helper()
	if err := ociimage.CheckStaticELF(r, arch); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	f, err := elf.NewFile(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("%s has section %s: not built with -ldflags '-s -w'", name, s.Name)
		}
	}
	info, err := buildinfo.Read(r)
	if err != nil {
		t.Errorf("%s: no Go build information: %v", name, err)
		return
	}
	if want := module + "/" + strings.TrimPrefix(pkg, "./"); info.Path != want {
		t.Errorf("%s is %s; want %s", name, info.Path, want)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": arch} {
		if settings[k] != v {
			t.Errorf("%s was built with %s=%q; want %q", name, k, settings[k], v)
		}
	}
	t.Logf("%s: %s, %.1f MiB, %s", name, info.Path, float64(r.Size())/(1<<20), info.GoVersion)
}

// TestReleaseWorkflow: the release workflow (which cannot run here; make
// lint checks it with actionlint) pushes the image where the chart pulls
// it, for both architectures, and builds a kubectl-pharos archive for
// every platform of the krew manifest, under the name the manifest gives.
func TestReleaseWorkflow(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		// YAML 1.1 reads the key on as true.
		On struct {
			Push struct {
				Tags []string `json:"tags"`
			} `json:"push"`
		} `json:"true"`
		Env  map[string]string `json:"env"`
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct {
					OS   []string `json:"os"`
					Arch []string `json:"arch"`
				} `json:"matrix"`
			} `json:"strategy"`
			Steps []struct {
				Uses string            `json:"uses"`
				With map[string]string `json:"with"`
				Run  string            `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(wf.On.Push.Tags, []string{"v*"}) {
		t.Errorf("the release runs on tags %q; want v*", wf.On.Push.Tags)
	}
	if wf.Env["IMAGE"] != ociimage.Repository {
		t.Errorf("the release pushes %q; the chart pulls %s", wf.Env["IMAGE"], ociimage.Repository)
	}
	pushed := false
	for _, s := range wf.Jobs["image"].Steps {
		if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
			pushed = true
			if p := s.With["platforms"]; p != "linux/amd64,linux/arm64" {
				t.Errorf("the image is built for %q; want linux/amd64,linux/arm64", p)
			}
		}
	}
	if !pushed {
		t.Error("the image job has no docker/build-push-action step")
	}
	built := map[string]bool{}
	m := wf.Jobs["plugin"].Strategy.Matrix
	for _, o := range m.OS {
		for _, a := range m.Arch {
			built[o+"_"+a] = true
		}
	}

	krew, err := os.ReadFile(filepath.Join(repoRoot(), ".krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The manifest is a template (not YAML until the bot renders it):
	// each platform is a selector line, the archive's URL, the binary.
	lines := strings.Split(string(krew), "\n")
	platforms := 0
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "matchLabels: {os: ") || i+2 >= len(lines) {
			continue
		}
		platforms++
		var goos, arch string
		if _, err := fmt.Sscanf(strings.NewReplacer(",", " ", "}", " ").Replace(line), "matchLabels: {os: %s arch: %s", &goos, &arch); err != nil {
			t.Errorf(".krew.yaml: %q: %v", line, err)
			continue
		}
		if !built[goos+"_"+arch] {
			t.Errorf(".krew.yaml installs on %s/%s, for which the release builds no archive", goos, arch)
		}
		if want := "/kubectl-pharos_{{ .TagName }}_" + goos + "_" + arch + ".tar.gz"; !strings.Contains(lines[i+1], want) {
			t.Errorf(".krew.yaml: %s/%s's URL %q does not end in %s", goos, arch, strings.TrimSpace(lines[i+1]), want)
		}
		bin := "kubectl-pharos"
		if goos == "windows" {
			bin += ".exe"
		}
		if got := strings.TrimSpace(lines[i+2]); got != "bin: "+bin {
			t.Errorf(".krew.yaml: %s/%s: %q; want bin: %s", goos, arch, got, bin)
		}
	}
	if platforms != len(built) {
		t.Errorf(".krew.yaml has %d platforms; the release builds %d archives", platforms, len(built))
	}
}
