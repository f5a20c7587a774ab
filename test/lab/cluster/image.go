package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
)

// labImage is Pharos's image as the node agents run it.
type labImage struct {
	ref, repository string
	uid, gid        int64
}

// ImageRootfs is where Up unpacks PharosImageArchive.
func (l *Lab) ImageRootfs() string { return filepath.Join(l.Dir, "image", "rootfs") }

// PharosImageRef is the name of PharosImageArchive's image
// (repository:tag), which the chart's image values must name; empty
// without an archive, or before Up.
func (l *Lab) PharosImageRef() string {
	if l.image == nil {
		return ""
	}
	return l.image.ref
}

// unpackImage unpacks PharosImageArchive into ImageRootfs once, for the
// node agents, and reads the image's name and user.
func (l *Lab) unpackImage(context.Context) error {
	if l.PharosImageArchive == "" {
		return nil
	}
	im, err := ociimage.Open(l.PharosImageArchive)
	if err != nil {
		return err
	}
	i := strings.LastIndexByte(im.RefName, ':')
	if i <= strings.LastIndexByte(im.RefName, '/') {
		return fmt.Errorf("%s names its image %q, not repository:tag", l.PharosImageArchive, im.RefName)
	}
	img := &labImage{ref: im.RefName, repository: im.RefName[:i]}
	if img.uid, img.gid, err = ociimage.ParseUser(im.Config.Config.User); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Dir(l.ImageRootfs())); err != nil {
		return err
	}
	if err := im.Unpack(l.ImageRootfs()); err != nil {
		return err
	}
	l.image = img
	l.logf("image %s (%s, user %s) unpacked in %s", im.RefName, im.ManifestDigest, im.Config.Config.User, l.ImageRootfs())
	return nil
}

// BuildImage builds Pharos's image into the OCI archive out with
// hack/image (buildah; make image-archive), and returns out.
func BuildImage(repoRoot, out string) (string, error) {
	cmd := exec.Command("go", "run", "./hack/image", "-out", out)
	cmd.Dir = repoRoot
	cmd.Stdout = os.Stderr
	if _, err := runHelper(cmd, os.Stderr); err != nil {
		return "", fmt.Errorf("building the image (hack/image; hack/host-deps.sh image installs buildah): %w", err)
	}
	return out, nil
}
