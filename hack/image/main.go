// Command image builds Pharos's container image without Docker, as an OCI
// archive (make image-archive):
//
//	go run ./hack/image [-out _output/image/pharos.tar] [-ref ghcr.io/pharos-lb/pharos:dev] [-arch amd64] [-version V]
//
// It builds the static binaries that ociimage.Pharos lists (CGO_ENABLED=0,
// -trimpath, -ldflags '-s -w'), checks that they are static, and puts them
// with buildah into an image FROM scratch with the same user, entrypoint
// and labels as the Dockerfile (test/image checks both against
// ociimage.Pharos). buildah runs with the vfs storage driver in a storage
// directory of its own beside the archive, which it removes at the end,
// and its working container is removed whatever happens, so a run that
// failed or was interrupted leaves nothing behind and the next one starts
// clean. It needs buildah (hack/host-deps.sh image installs it on Debian)
// and root, or a rootless buildah set up for this user.
//
// The layer is gzip-compressed, and its files and the image's creation
// time are those of the last commit (SOURCE_DATE_EPOCH overrides it), so
// that the same tree gives the same archive. The archive names the image
// -ref (index.json's org.opencontainers.image.ref.name), which is the name
// `k3s ctr images import` and `nerdctl load` give it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

type options struct {
	out, ref, arch, version, revision string
	created                           int64
}

func run(ctx context.Context) error {
	var o options
	flag.StringVar(&o.out, "out", "_output/image/pharos.tar", "the OCI archive to write")
	flag.StringVar(&o.ref, "ref", ociimage.Repository+":dev", "the image's name in the archive")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "the image's architecture (GOARCH)")
	flag.StringVar(&o.version, "version", "", "the version label (default: git describe --tags --always --dirty, else dev)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	start := time.Now()
	if _, err := exec.LookPath("buildah"); err != nil {
		return errors.New("buildah is not on PATH: hack/host-deps.sh image installs it (Debian package buildah)")
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	// containers/image takes the first colon of oci-archive:PATH:REF as
	// the end of the path.
	if strings.Contains(out, ":") {
		return fmt.Errorf("the archive's path %s has a colon, which buildah cannot write to", out)
	}
	o.out = out
	if o.version == "" {
		o.version = gitOr("dev", "describe", "--tags", "--always", "--dirty")
	}
	o.revision = gitOr(ociimage.Pharos.BuildArgs["REVISION"], "rev-parse", "HEAD")
	if o.created, err = created(); err != nil {
		return err
	}

	root, err := moduleRoot()
	if err != nil {
		return fmt.Errorf("%w: run it in Pharos's repository", err)
	}
	work := filepath.Join(filepath.Dir(out), "linux_"+o.arch)
	bins, err := buildBinaries(ctx, root, work, o.arch)
	if err != nil {
		return err
	}
	built := time.Now()
	if err := buildImage(ctx, o, bins); err != nil {
		return err
	}
	im, err := ociimage.Open(out)
	if err != nil {
		return fmt.Errorf("the archive buildah wrote: %w", err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: %s: %s (%s, user %s, entrypoint %q), %.1f MiB; binaries %.1fs, image %.1fs\n",
		out, im.RefName, im.ManifestDigest, im.Config.Config.User, im.Config.Config.Entrypoint,
		float64(fi.Size())/(1<<20), built.Sub(start).Seconds(), time.Since(built).Seconds())
	return nil
}

// moduleRoot is the directory of Pharos's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("not in a Go module")
	}
	return filepath.Dir(gomod), nil
}

// gitOr returns git's answer, or def when git fails (no repository).
func gitOr(def string, args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if s := strings.TrimSpace(string(out)); err == nil && s != "" {
		return s
	}
	return def
}

// created is the image's creation time: SOURCE_DATE_EPOCH, else the last
// commit's time, else now.
func created() (int64, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return t, nil
	}
	if t, err := strconv.ParseInt(gitOr("", "log", "-1", "--format=%ct"), 10, 64); err == nil {
		return t, nil
	}
	return time.Now().Unix(), nil
}

// buildBinaries builds the image's binaries into dir and checks that they
// are static; it returns their paths, in ociimage.Pharos.Files' order.
func buildBinaries(ctx context.Context, root, dir, arch string) ([]string, error) {
	spec := ociimage.Pharos
	args := append([]string{"build"}, spec.GoFlags...)
	args = append(args, "-o", dir+"/")
	var bins []string
	for _, f := range spec.Files {
		args = append(args, f.Package)
		bins = append(bins, filepath.Join(dir, filepath.Base(f.Package)))
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), spec.GoEnv...)
	cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	fmt.Fprintf(os.Stderr, "image: %s GOOS=linux GOARCH=%s go %s\n", strings.Join(spec.GoEnv, " "), arch, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	for _, b := range bins {
		f, err := os.Open(b)
		if err != nil {
			return nil, err
		}
		err = ociimage.CheckStaticELF(f, arch)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b, err)
		}
	}
	return bins, nil
}

// buildah runs buildah on a storage directory of its own.
type buildah struct {
	ctx     context.Context
	storage string
}

func (b buildah) run(args ...string) error {
	full := append([]string{"--storage-driver", "vfs", "--root", filepath.Join(b.storage, "root"), "--runroot", filepath.Join(b.storage, "runroot")}, args...)
	cmd := exec.CommandContext(b.ctx, "buildah", full...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := fmt.Errorf("buildah %s: %w", strings.Join(args, " "), err)
		if s := strings.TrimSpace(stderr.String()); s != "" {
			msg = fmt.Errorf("%w: %s", msg, s)
		}
		return msg
	}
	return nil
}

// buildImage puts the binaries into an image FROM scratch and commits it
// to the archive o.out, replacing it only once the new one is complete.
func buildImage(ctx context.Context, o options, bins []string) (err error) {
	spec := ociimage.Pharos
	storage := filepath.Join(filepath.Dir(o.out), ".buildah-"+o.arch)
	// Whatever an earlier run left (killed before its clean-up) goes.
	if err := os.RemoveAll(storage); err != nil {
		return err
	}
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return err
	}
	b := buildah{ctx: ctx, storage: storage}
	name := "pharos-image-" + o.arch
	committed := false
	defer func() {
		if !committed {
			// A context of its own: ctx may be why we are here.
			rm := buildah{ctx: context.Background(), storage: storage}
			if rmErr := rm.run("rm", name); rmErr != nil && err == nil {
				err = rmErr
			}
		}
		if rmErr := os.RemoveAll(storage); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	if err := b.run("from", "--name", name, "--arch", o.arch, "--os", "linux", spec.Base); err != nil {
		return err
	}
	for i, f := range spec.Files {
		if err := b.run("copy", "--chown", "0:0", "--chmod", "0755", name, bins[i], f.Path); err != nil {
			return err
		}
	}
	entrypoint := `["` + strings.Join(spec.Entrypoint, `","`) + `"]`
	cfg := []string{"config", "--user", spec.User, "--entrypoint", entrypoint, "--cmd", "", "--os", "linux", "--arch", o.arch,
		"--created-by", "hack/image: COPY " + strings.Join(spec.Paths(), " ")}
	for _, e := range spec.Env {
		cfg = append(cfg, "--env", e)
	}
	labels := spec.ExpandLabels(map[string]string{"VERSION": o.version, "REVISION": o.revision})
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		cfg = append(cfg, "--label", k+"="+labels[k])
	}
	if err := b.run(append(cfg, name)...); err != nil {
		return err
	}
	tmp := o.out + ".tmp"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	if err := b.run("commit", "--quiet", "--format", "oci", "--identity-label=false", "--disable-compression=false",
		"--timestamp", strconv.FormatInt(o.created, 10), "--rm", name, "oci-archive:"+tmp+":"+o.ref); err != nil {
		return err
	}
	committed = true
	return os.Rename(tmp, o.out)
}
