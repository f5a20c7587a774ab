package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// entry is one entry of a test layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// archiveBuilder writes an OCI archive: blobs, then index.json.
type archiveBuilder struct {
	t     *testing.T
	files map[string][]byte
}

func (a *archiveBuilder) blob(b []byte) Descriptor {
	d := digest(b)
	a.files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] = b
	return Descriptor{Digest: d, Size: int64(len(b))}
}

func (a *archiveBuilder) json(v any) Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.blob(b)
}

// image adds an image of the layers (gzipped when gz) and returns its
// manifest's descriptor.
func (a *archiveBuilder) image(cfg Config, gz bool, layers ...[]byte) Descriptor {
	var m manifest
	m.SchemaVersion, m.MediaType = 2, mediaTypeManifest
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest(l))
		blob, mt := l, "application/vnd.oci.image.layer.v1.tar"
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(l)
			_ = zw.Close()
			blob, mt = buf.Bytes(), mt+"+gzip"
		}
		d := a.blob(blob)
		d.MediaType = mt
		m.Layers = append(m.Layers, d)
	}
	m.Config = a.json(cfg)
	m.Config.MediaType = "application/vnd.oci.image.config.v1+json"
	d := a.json(m)
	d.MediaType = mediaTypeManifest
	return d
}

func (a *archiveBuilder) write(idx index) string {
	a.t.Helper()
	raw, _ := json.Marshal(idx)
	a.files["index.json"] = raw
	a.files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(a.files))
	for n := range a.files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(a.files[n])), Typeflag: tar.TypeReg})
		_, _ = tw.Write(a.files[n])
	}
	_ = tw.Close()
	p := filepath.Join(a.t.TempDir(), "image.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		a.t.Fatal(err)
	}
	return p
}

func newBuilder(t *testing.T) *archiveBuilder {
	return &archiveBuilder{t: t, files: map[string][]byte{}}
}

func testConfig() Config {
	var c Config
	c.OS, c.Architecture = "linux", runtime.GOARCH
	c.Config.User = "65532:65532"
	c.Config.Entrypoint = []string{"/controller"}
	c.Config.Labels = map[string]string{"a": "b"}
	return c
}

func TestOpenAndUnpack(t *testing.T) {
	b := newBuilder(t)
	lower := layerTar(t, []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/old", body: "old"},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/gone", body: "x"},
		{name: "etc/keep", body: "x"},
		{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/lower", body: "x"},
	})
	upper := layerTar(t, []entry{
		{name: "./controller", body: "#!static", mode: 0o755},
		{name: "etc/.wh.gone", body: ""},
		{name: "opq/upper", body: "mine"},
		{name: "opq/.wh..wh..opq", body: ""},
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/tool", body: "tool", mode: 0o4755},
		{name: "sbin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "hard", typ: tar.TypeLink, link: "/controller"},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	})
	// The lower layer gzipped, the upper plain (as buildah writes layers
	// unless told to compress them).
	cfg := testConfig()
	var man manifest
	man.SchemaVersion, man.MediaType = 2, mediaTypeManifest
	for i, l := range [][]byte{lower, upper} {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest(l))
		blob, mt := l, "application/vnd.oci.image.layer.v1.tar"
		if i == 0 {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(l)
			_ = zw.Close()
			blob, mt = buf.Bytes(), mt+"+gzip"
		}
		d := b.blob(blob)
		d.MediaType = mt
		man.Layers = append(man.Layers, d)
	}
	cfg.RootFS.Type = "layers"
	man.Config = b.json(cfg)
	m := b.json(man)
	m.MediaType = mediaTypeManifest
	m.Annotations = map[string]string{AnnotationRefName: "ghcr.io/pharos-lb/pharos:dev"}
	path := b.write(index{SchemaVersion: 2, Manifests: []Descriptor{m}})

	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.RefName != "ghcr.io/pharos-lb/pharos:dev" || im.Config.Config.User != "65532:65532" || len(im.Layers) != 2 {
		t.Fatalf("Open: ref %q, user %q, %d layers", im.RefName, im.Config.Config.User, len(im.Layers))
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := im.Unpack(root); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	for p, want := range map[string]string{
		"controller": "#!static", "bin/old": "old", "etc/keep": "x", "opq/upper": "mine",
		"sbin/tool": "tool", "hard": "#!static",
	} {
		if got := read(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"etc/gone", "etc/.wh.gone", "opq/lower", "opq/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists after the whiteouts (err %v)", p, err)
		}
	}
	modes := map[string]os.FileMode{"controller": 0o755, "usr/bin/tool": 0o755 | os.ModeSetuid, "tmp": 0o777 | os.ModeSticky | os.ModeDir}
	for p, want := range modes {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (err %v), want %v", p, fi.Mode(), err, want)
		}
	}
	if err := im.Unpack(root); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second Unpack into the same directory: %v, want not empty", err)
	}
}

func TestUnpackStaysInside(t *testing.T) {
	b := newBuilder(t)
	outside := t.TempDir()
	l := layerTar(t, []entry{
		{name: "../../escape", body: "x"},
		{name: "out", typ: tar.TypeSymlink, link: outside},
		{name: "out/through", body: "x"},
		{name: "up", typ: tar.TypeSymlink, link: "../../../.."},
		{name: "up/through-up", body: "x"},
		{name: "hard", typ: tar.TypeLink, link: "../../../../etc/passwd"},
	})
	m := b.image(testConfig(), false, l)
	path := b.write(index{SchemaVersion: 2, Manifests: []Descriptor{m}})
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	err = im.Unpack(root)
	// The hard link's target, /etc/passwd of the image, does not exist.
	if err == nil || !strings.Contains(err.Error(), "/hard") {
		t.Errorf("Unpack: %v, want the hard link to fail", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("Unpack wrote outside its root: %v", entries)
	}
	for _, p := range []string{"escape", filepath.Join(outside, "through"), "through-up"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s is not inside the root: %v", p, err)
		}
	}
}

func TestOpenPicksPlatformAndChecksDigests(t *testing.T) {
	b := newBuilder(t)
	l := layerTar(t, []entry{{name: "controller", body: "x", mode: 0o755}})
	mine := b.image(testConfig(), true, l)
	other := testConfig()
	other.Architecture = "other"
	theirs := b.image(other, true, layerTar(t, []entry{{name: "other", body: "y"}}))
	set := func(d Descriptor, arch string) Descriptor {
		d.Platform = &struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
		}{arch, "linux"}
		return d
	}
	inner := b.json(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []Descriptor{set(theirs, "other"), set(mine, runtime.GOARCH)}})
	inner.MediaType = mediaTypeIndex
	path := b.write(index{SchemaVersion: 2, Manifests: []Descriptor{inner}})
	im, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if im.Config.Architecture != runtime.GOARCH {
		t.Errorf("picked %s", im.Config.Architecture)
	}
	var files []string
	if err := im.Walk(func(_ int, name string, _ *tar.Header, _ io.Reader) error {
		files = append(files, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, []string{"/controller"}) {
		t.Errorf("files %v", files)
	}

	// A layer that does not match its digest fails the walk.
	for name, content := range b.files {
		if bytes.Equal(content, mustGzip(l)) {
			b.files[name] = mustGzip(layerTar(t, []entry{{name: "controller", body: "y", mode: 0o755}}))
		}
	}
	path = b.write(index{SchemaVersion: 2, Manifests: []Descriptor{inner}})
	im, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Walk(func(int, string, *tar.Header, io.Reader) error { return nil }); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("walk of a tampered layer: %v", err)
	}
}

func mustGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755)
	_ = os.Symlink("usr/bin", filepath.Join(root, "bin"))
	_ = os.Symlink("/usr", filepath.Join(root, "abs"))
	_ = os.Symlink("../../../..", filepath.Join(root, "usr", "up"))
	_ = os.Symlink("loop", filepath.Join(root, "loop"))
	for in, want := range map[string]string{
		"/controller":     "/controller",
		"/bin/sh":         "/usr/bin/sh",
		"/abs/bin":        "/usr/bin",
		"/usr/up/etc":     "/etc",
		"/../../etc":      "/etc",
		"/usr/./bin/../x": "/usr/x",
	} {
		got, err := Resolve(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, filepath.Join(root, want))
		}
	}
	if _, err := Resolve(root, "/loop/x"); err == nil {
		t.Error("a symbolic link loop resolved")
	}
}

func TestSpec(t *testing.T) {
	for in, want := range map[string][2]int64{"": {0, 0}, "65532:65532": {65532, 65532}, "1000": {1000, 0}} {
		u, g, err := ParseUser(in)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("ParseUser(%q) = %d, %d, %v", in, u, g, err)
		}
	}
	for _, bad := range []string{"nonroot", "1:x", "-1:0"} {
		if _, _, err := ParseUser(bad); err == nil {
			t.Errorf("ParseUser(%q) accepted", bad)
		}
	}
	l := Pharos.ExpandLabels(map[string]string{"VERSION": "v1.2.3"})
	if l["org.opencontainers.image.version"] != "v1.2.3" || l["org.opencontainers.image.revision"] != "unknown" {
		t.Errorf("expanded labels: %v", l)
	}
	if v := Pharos.VariableLabels(); len(v) != 2 {
		t.Errorf("variable labels %v", v)
	}
}
