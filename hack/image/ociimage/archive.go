package ociimage

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
)

// Media types this package reads.
const (
	mediaTypeIndex          = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest       = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// AnnotationRefName is the annotation of index.json that names the
	// image (containerd's import takes a full reference there as the
	// image's name).
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// maxJSONBlob bounds what is read into memory: index, manifests, config.
const maxJSONBlob = 4 << 20

// Descriptor points at a blob of the archive.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Config is what this package reads of an image's configuration.
type Config struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Created      string `json:"created"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// Image is one image of an OCI archive: its manifest's layers and its
// configuration. Its layers are read from the archive when walked.
type Image struct {
	// Archive is the archive's path.
	Archive string
	// RefName is the name the archive gives the image (index.json's
	// org.opencontainers.image.ref.name), e.g. ghcr.io/pharos-lb/pharos:dev.
	RefName string
	// ManifestDigest is the digest of the image's manifest.
	ManifestDigest string
	// Config is the image's configuration.
	Config Config
	// Layers are the image's layers, bottom first.
	Layers []Descriptor
}

// Open reads an OCI archive's index, the image's manifest and its
// configuration, checking each against its digest. An archive of several
// platforms (an index of manifests) yields linux on this machine's
// architecture.
func Open(archive string) (*Image, error) {
	blobs, err := readSmallBlobs(archive)
	if err != nil {
		return nil, err
	}
	raw, ok := blobs["index.json"]
	if !ok {
		return nil, fmt.Errorf("%s: no index.json: not an OCI archive", archive)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", archive, err)
	}
	desc, err := pick(idx.Manifests)
	if err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", archive, err)
	}
	im := &Image{Archive: archive, RefName: desc.Annotations[AnnotationRefName]}
	// An index may point at another index (a multi-platform image).
	for range 3 {
		if desc.MediaType != mediaTypeIndex && desc.MediaType != mediaTypeDockerList {
			break
		}
		raw, err := blob(blobs, desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		var inner index
		if err := json.Unmarshal(raw, &inner); err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", archive, desc.Digest, err)
		}
		outer := desc.Digest
		if desc, err = pick(inner.Manifests); err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", archive, outer, err)
		}
	}
	if desc.MediaType != mediaTypeManifest && desc.MediaType != mediaTypeDockerManifest {
		return nil, fmt.Errorf("%s: %s is a %q, not an image manifest", archive, desc.Digest, desc.MediaType)
	}
	raw, err = blob(blobs, desc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", archive, desc.Digest, err)
	}
	im.ManifestDigest = desc.Digest
	raw, err = blob(blobs, m.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", archive, err)
	}
	if err := json.Unmarshal(raw, &im.Config); err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", archive, m.Config.Digest, err)
	}
	im.Layers = m.Layers
	if n := len(im.Config.RootFS.DiffIDs); n != len(im.Layers) {
		return nil, fmt.Errorf("%s: the manifest has %d layers, the config %d diff_ids", archive, len(im.Layers), n)
	}
	return im, nil
}

// pick chooses the one manifest of an index, or the one for linux on this
// machine's architecture.
func pick(ds []Descriptor) (Descriptor, error) {
	if len(ds) == 1 {
		return ds[0], nil
	}
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d, nil
		}
	}
	return Descriptor{}, fmt.Errorf("%d manifests and none for linux/%s", len(ds), runtime.GOARCH)
}

// readSmallBlobs reads index.json and every blob small enough to be JSON,
// keyed by "index.json" and by digest ("sha256:...").
func readSmallBlobs(archive string) (map[string][]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return blobs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size > maxJSONBlob {
			continue
		}
		name := cleanName(hdr.Name)
		key := name
		if d, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			key = "sha256:" + d
		} else if name != "index.json" {
			continue
		}
		if blobs[key], err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", archive, name, err)
		}
	}
}

// blob returns a small blob after checking its size and digest.
func blob(blobs map[string][]byte, d Descriptor) ([]byte, error) {
	if !strings.HasPrefix(d.Digest, "sha256:") {
		return nil, fmt.Errorf("digest %q: only sha256 is supported", d.Digest)
	}
	raw, ok := blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s is not in the archive (or over %d bytes)", d.Digest, maxJSONBlob)
	}
	if int64(len(raw)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, the descriptor says %d", d.Digest, len(raw), d.Size)
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != d.Digest {
		return nil, fmt.Errorf("blob %s does not match its digest", d.Digest)
	}
	return raw, nil
}

// cleanName is a tar entry's name without "./" or a leading "/".
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// WalkFunc is called for each entry of each layer, bottom layer first, in
// the layer's order; r reads a regular file's content. name is the
// entry's cleaned absolute path in the image ("/controller").
type WalkFunc func(layer int, name string, hdr *tar.Header, r io.Reader) error

// Walk reads the image's layers in order and calls fn for each entry. It
// checks each layer against its digest and its uncompressed content
// against the config's diff_id: an error is returned at the end of a layer
// that does not match (fn has seen its entries by then).
func (im *Image) Walk(fn WalkFunc) error {
	for i, l := range im.Layers {
		if err := im.walkLayer(i, l, fn); err != nil {
			return fmt.Errorf("%s: layer %d (%s): %w", im.Archive, i, l.Digest, err)
		}
	}
	return nil
}

func (im *Image) walkLayer(i int, l Descriptor, fn WalkFunc) error {
	f, err := os.Open(im.Archive)
	if err != nil {
		return err
	}
	defer f.Close()
	want := "blobs/sha256/" + strings.TrimPrefix(l.Digest, "sha256:")
	outer := tar.NewReader(f)
	for {
		hdr, err := outer.Next()
		if errors.Is(err, io.EOF) {
			return errors.New("not in the archive")
		}
		if err != nil {
			return err
		}
		if cleanName(hdr.Name) != want {
			continue
		}
		if hdr.Size != l.Size {
			return fmt.Errorf("%d bytes, the manifest says %d", hdr.Size, l.Size)
		}
		return walkTar(outer, l, im.Config.RootFS.DiffIDs[i], func(name string, h *tar.Header, r io.Reader) error {
			return fn(i, name, h, r)
		})
	}
}

// walkTar reads one layer blob from r: decompressed as its media type
// says, each entry passed to fn; then both digests are checked.
func walkTar(r io.Reader, l Descriptor, diffID string, fn func(string, *tar.Header, io.Reader) error) error {
	blobSum := sha256.New()
	compressed := io.TeeReader(r, blobSum)
	content := compressed
	switch {
	case strings.HasSuffix(l.MediaType, "+gzip") || strings.HasSuffix(l.MediaType, ".tar.gzip"):
		zr, err := gzip.NewReader(content)
		if err != nil {
			return err
		}
		defer zr.Close()
		content = zr
	case strings.HasSuffix(l.MediaType, "+zstd"):
		return fmt.Errorf("media type %s: zstd layers are not supported", l.MediaType)
	case strings.HasSuffix(l.MediaType, ".tar"):
	default:
		return fmt.Errorf("media type %q is not a layer", l.MediaType)
	}
	diffSum := sha256.New()
	content = io.TeeReader(content, diffSum)
	tr := tar.NewReader(content)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := fn("/"+cleanName(hdr.Name), hdr, tr); err != nil {
			return err
		}
	}
	// The tar's end blocks and any padding count in the digests.
	if _, err := io.Copy(io.Discard, content); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return err
	}
	if got := sum(diffSum); got != diffID {
		return fmt.Errorf("uncompressed content %s does not match the config's diff_id %s", got, diffID)
	}
	if got := sum(blobSum); got != l.Digest {
		return fmt.Errorf("content %s does not match its digest", got)
	}
	return nil
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
