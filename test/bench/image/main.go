// Command image measures Pharos's image as make image-archive builds it
// (hack/image: the static binaries, then buildah FROM scratch): the size
// of the OCI archive, which is what an air-gapped user copies and imports
// (goal < 60 MiB), and how long a build takes with Go's build cache warm,
// from an empty output directory (so the binaries are linked again and
// the image committed again): the median of -runs builds.
//
// It needs what make image-archive needs: buildah, and root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
	"github.com/pharos-lb/pharos/test/bench/figures"
)

var (
	runs = flag.Int("runs", 3, "timed builds")
	out  = flag.String("out", "_output/bench/image", "working directory")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-image:", err)
		os.Exit(1)
	}
}

func run() error {
	if *runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", *runs)
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	// The build tool itself is built first: go run's compile is not the
	// image's build.
	tool := filepath.Join(dir, "hack-image")
	if err := command("go", "build", "-o", tool, "./hack/image").Run(); err != nil {
		return fmt.Errorf("building hack/image: %w", err)
	}
	archive := filepath.Join(dir, "pharos.tar")
	var secs []float64
	// One untimed build warms Go's cache for these flags.
	for i := -1; i < *runs; i++ {
		for _, p := range []string{archive, filepath.Join(dir, "linux_amd64"), filepath.Join(dir, "linux_arm64")} {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		start := time.Now()
		if err := command(tool, "-out", archive).Run(); err != nil {
			return fmt.Errorf("hack/image: %w", err)
		}
		if i >= 0 {
			secs = append(secs, time.Since(start).Seconds())
		}
	}
	fi, err := os.Stat(archive)
	if err != nil {
		return err
	}
	im, err := ociimage.Open(archive)
	if err != nil {
		return err
	}
	var uncompressed int64
	for _, f := range ociimage.Pharos.Files {
		st, err := os.Stat(filepath.Join(dir, "linux_"+im.Config.Architecture, filepath.Base(f.Package)))
		if err != nil {
			return err
		}
		uncompressed += st.Size()
	}
	slices.Sort(secs)
	fmt.Fprintf(os.Stderr, "bench-image: %s, %d builds: %v s\n", im.RefName, len(secs), secs)
	figures.Report("ImageArchive", "image_archive_mib", float64(fi.Size())/(1<<20))
	figures.Report("ImageFiles", "image_files_mib", float64(uncompressed)/(1<<20))
	figures.Report("ImageBuild", "image_build_s", secs[len(secs)/2])
	return nil
}

func command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}
