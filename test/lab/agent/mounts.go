package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// bindMount is one of a pod's volumes as the launcher mounts it: the
// directory the agent keeps for it, at the container's mountPath.
type bindMount struct {
	src, dst string
	readOnly bool
}

// String renders m as pod-exec's --bind flag takes it: "rw:SRC:DST" or
// "ro:SRC:DST". Neither path may hold a colon (pharosPodOf refuses such a
// mountPath, and the agent's own directories have none).
func (m bindMount) String() string {
	mode := "rw"
	if m.readOnly {
		mode = "ro"
	}
	return mode + ":" + m.src + ":" + m.dst
}

func parseBindMount(s string) (bindMount, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || (parts[0] != "rw" && parts[0] != "ro") || !strings.HasPrefix(parts[1], "/") || !strings.HasPrefix(parts[2], "/") {
		return bindMount{}, fmt.Errorf("--bind %q: want rw:SRC:DST or ro:SRC:DST with absolute paths", s)
	}
	return bindMount{src: parts[1], dst: parts[2], readOnly: parts[0] == "ro"}, nil
}

// writablePaths are the machine's mounts a container with a read-only root
// filesystem may still write to, as a container runtime gives them to it
// (/proc, the shared memory and message queue filesystems, pseudo
// terminals), if they are mounts here and writable to begin with. /sys
// stays read-only, as a runtime mounts it for a container that is not
// privileged; /dev too (writing to a device node needs no writable mount).
var writablePaths = []string{"/proc", "/dev/shm", "/dev/mqueue", "/dev/pts"}

// procReadOnlyPaths are the parts of /proc that a container runtime makes
// read-only even when /proc is writable (runc's readonlyPaths, which
// Kubernetes' default procMount keeps): sysctls and the like.
var procReadOnlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// setupMounts gives the calling thread a mount namespace of its own with
// the pod's volumes bound at their mountPaths and, with readOnlyRoot, every
// mount read-only except those volumes and writablePaths. There is no
// chroot: the process sees this machine's files, none of which it can
// change. The namespace stays a slave of the machine's, so that the lab's
// unmounts (a pod netns deleted by ip netns delete) still reach it and it
// keeps no namespace alive. The thread must be locked (runtime.LockOSThread)
// and stay so until it executes the container's binary.
func setupMounts(binds []bindMount, readOnlyRoot bool) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare the mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make the mounts slaves: %w", err)
	}
	for _, b := range binds {
		if err := unix.Mount(b.src, b.dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount volume %s at %s: %w", b.src, b.dst, err)
		}
	}
	if readOnlyRoot {
		if err := readOnlyRootfs(binds); err != nil {
			return err
		}
	}
	for _, b := range binds {
		if b.readOnly {
			if err := setReadOnly(b.dst, true, true); err != nil {
				return fmt.Errorf("make volume %s read-only: %w", b.dst, err)
			}
		}
	}
	return nil
}

// readOnlyRootfs makes every mount of this namespace read-only, then makes
// writable again the pod's volumes and those of writablePaths that are
// mounts and were writable, and finally makes procReadOnlyPaths read-only
// within a writable /proc.
func readOnlyRootfs(binds []bindMount) error {
	// The thread's: after unshare, only this thread is in the new
	// namespace, and /proc/self is the process's first thread.
	info, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return err
	}
	mounts := parseMountinfo(string(info))
	var keep []string
	for _, b := range binds {
		keep = append(keep, b.dst)
	}
	for _, p := range writablePaths {
		if ro, ok := mounts[p]; ok && !ro {
			keep = append(keep, p)
		}
	}
	if err := setReadOnly("/", true, true); err != nil {
		return fmt.Errorf("make the root filesystem read-only: %w", err)
	}
	procWritable := false
	for _, p := range keep {
		if err := setReadOnly(p, false, false); err != nil {
			return fmt.Errorf("keep %s writable: %w", p, err)
		}
		procWritable = procWritable || p == "/proc"
	}
	if !procWritable {
		return nil
	}
	for _, p := range procReadOnlyPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := setReadOnly(p, true, true); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}

// setReadOnly sets or clears the read-only flag of the mount at path, and
// with recursive of every mount below it. mount_setattr(2) (Linux 5.12)
// does it in one call for the whole tree, including mounts that others
// hide.
func setReadOnly(path string, ro, recursive bool) error {
	attr := unix.MountAttr{}
	if ro {
		attr.Attr_set = unix.MOUNT_ATTR_RDONLY
	} else {
		attr.Attr_clr = unix.MOUNT_ATTR_RDONLY
	}
	var flags uint
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(-1, path, flags, &attr); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("mount_setattr: %w (the lab needs Linux 5.12 or later to give a pod a read-only root filesystem)", err)
		}
		return fmt.Errorf("mount_setattr %s: %w", path, err)
	}
	return nil
}

// parseMountinfo returns the mount points of a /proc/PID/mountinfo and
// whether each is read-only; where mounts are stacked on one point, the
// last (the visible one) wins.
func parseMountinfo(info string) map[string]bool {
	mounts := map[string]bool{}
	for _, line := range strings.Split(info, "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		ro := false
		for _, o := range strings.Split(f[5], ",") {
			ro = ro || o == "ro"
		}
		mounts[unescapeMountinfo(f[4])] = ro
	}
	return mounts
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
