package agent

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// capNumbers are Linux's capability numbers (linux/capability.h), by the
// names Kubernetes uses (without CAP_).
var capNumbers = map[string]int{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
	"SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
	"NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
	"SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
	"SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
	"SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
	"SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
	"BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

// runtimeDefaultCaps is what containerd and CRI-O give a container that
// asks for nothing.
var runtimeDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// containerCaps returns the capabilities a container runs with, as a
// container runtime derives them: everything if privileged, else the
// runtime's defaults (none after drop ALL), minus drop, plus add. Names
// are upper case without CAP_, sorted.
func containerCaps(c *corev1.Container) ([]string, error) {
	sc := c.SecurityContext
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		var all []string
		for n := range capNumbers {
			all = append(all, n)
		}
		slices.Sort(all)
		return all, nil
	}
	set := map[string]bool{}
	for _, n := range runtimeDefaultCaps {
		set[n] = true
	}
	norm := func(n corev1.Capability) string { return strings.TrimPrefix(strings.ToUpper(string(n)), "CAP_") }
	if sc != nil && sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			if norm(d) == "ALL" {
				clear(set)
			}
			delete(set, norm(d))
		}
		for _, a := range sc.Capabilities.Add {
			n := norm(a)
			if _, ok := capNumbers[n]; !ok {
				return nil, fmt.Errorf("container %s adds unknown capability %q", c.Name, a)
			}
			set[n] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// limitCaps confines this process, and what it executes, to the named
// capabilities: every other one leaves the bounding set, and the
// inheritable set becomes exactly these. A root process that then executes
// a binary gets permitted = effective = bounding set, as in a container.
func limitCaps(names []string) error {
	keep := map[int]bool{}
	for _, n := range names {
		num, ok := capNumbers[n]
		if !ok {
			return fmt.Errorf("unknown capability %q", n)
		}
		keep[num] = true
	}
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = v
		}
	}
	for c := 0; c <= last; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var inh [2]uint32
	for c := range keep {
		inh[c/32] |= 1 << (c % 32)
	}
	for i := range data {
		data[i].Inheritable = inh[i]
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
