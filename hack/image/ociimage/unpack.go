package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Whiteouts: a layer deletes a lower layer's file with an empty file
// ".wh.<name>" beside it, and hides everything a lower layer had in a
// directory with ".wh..wh..opq" in it.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Unpack writes the image's filesystem into dir, which must not exist or
// be empty: each layer in turn, with its whiteouts applied to the layers
// below. Files get their modes and times and, when this process is root,
// their owners. Nothing is written outside dir: names and hard links are
// resolved inside it, symbolic links as if dir were the root. Device
// nodes and FIFOs are skipped (an unprivileged container could not use
// them either).
func (im *Image) Unpack(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return err
	} else if len(entries) > 0 {
		return fmt.Errorf("unpack into %s: not empty", dir)
	}
	u := &unpacker{root: dir, chown: os.Geteuid() == 0}
	cur := -1
	var dirTimes []*tar.Header
	err := im.Walk(func(layer int, name string, hdr *tar.Header, r io.Reader) error {
		if layer != cur {
			cur, u.thisLayer = layer, map[string]bool{}
		}
		if hdr.Typeflag == tar.TypeDir {
			dirTimes = append(dirTimes, hdr)
		}
		if err := u.apply(name, hdr, r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Directories' times last: writing into them changed them.
	for i := len(dirTimes) - 1; i >= 0; i-- {
		h := dirTimes[i]
		if p, err := Resolve(dir, "/"+cleanName(h.Name)); err == nil {
			_ = os.Chtimes(p, h.ModTime, h.ModTime)
		}
	}
	return nil
}

type unpacker struct {
	root  string
	chown bool
	// thisLayer holds the names the current layer wrote, which its own
	// opaque whiteouts leave alone.
	thisLayer map[string]bool
}

func (u *unpacker) apply(name string, hdr *tar.Header, r io.Reader) error {
	if name == "/" {
		return nil
	}
	parent, base := path.Split(name)
	if base == whiteoutOpaque {
		return u.opaque(parent)
	}
	if target, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		p, err := u.parentPath(path.Join(parent, target))
		if err != nil {
			return err
		}
		return os.RemoveAll(p)
	}
	p, err := u.parentPath(name)
	if err != nil {
		return err
	}
	u.thisLayer[path.Clean(name)] = true
	mode := fs.FileMode(hdr.Mode & 0o777)
	if fi, err := os.Lstat(p); err == nil && (!fi.IsDir() || hdr.Typeflag != tar.TypeDir) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		// The target stays as it is: Resolve follows it inside the root.
		return u.owner(p, hdr, os.Symlink(hdr.Linkname, p))
	case tar.TypeLink:
		target, err := Resolve(u.root, "/"+cleanName(hdr.Linkname))
		if err != nil {
			return err
		}
		return os.Link(target, p)
	default:
		return nil // devices, FIFOs
	}
	if err := u.owner(p, hdr, nil); err != nil {
		return err
	}
	// Set-id and sticky bits too, after chown (which clears set-id bits).
	if hdr.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return os.Chtimes(p, hdr.ModTime, hdr.ModTime)
}

// owner gives p the entry's owner when running as root; err is returned
// first, so that it can wrap the call that made p.
func (u *unpacker) owner(p string, hdr *tar.Header, err error) error {
	if err != nil || !u.chown {
		return err
	}
	return os.Lchown(p, hdr.Uid, hdr.Gid)
}

// opaque empties a directory of what the layers below put there.
func (u *unpacker) opaque(dir string) error {
	p, err := Resolve(u.root, dir)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if u.thisLayer[path.Join(dir, e.Name())] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(p, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// parentPath is where name goes on this machine: its directory resolved
// inside the root (which must exist: layers list directories before
// their entries), and its own last element as it is.
func (u *unpacker) parentPath(name string) (string, error) {
	parent, base := path.Split(path.Clean(name))
	dir, err := Resolve(u.root, parent)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Some layers omit directories; create them as a runtime does.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", parent)
	}
	return filepath.Join(dir, base), nil
}

// maxLinks bounds the symbolic links followed in one Resolve, as the
// kernel's 40 do.
const maxLinks = 40

// Resolve returns where an absolute path of a root filesystem (an
// unpacked image) is on this machine: symbolic links are followed as they
// would be with root as "/", so that the result is always inside root.
// Elements that do not exist are taken as they are.
func Resolve(root, name string) (string, error) {
	resolved := "/"
	todo := strings.Split(name, "/")
	links := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, elem)
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s in %s: too many symbolic links", name, root)
		}
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			resolved = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(root, filepath.FromSlash(resolved)), nil
}
