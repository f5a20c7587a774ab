package agent

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ExecPod is the launcher of Pharos pods' processes: the lab command's
// pod-exec subcommand, which the agent starts as root, already inside the
// pod's network namespace (or the node's, for hostNetwork pods), with the
// container's environment. It opens the binary, drops to the container's
// user and groups and replaces itself with the binary, so the process the
// agent watches and signals is Pharos itself:
//
//	pod-exec --uid 65532 --gid 65532 [--groups 1,2] [--hostname NAME] [--caps NET_RAW,...]
//	  [--bind rw:SRC:DST ...] [--read-only-root] [--no-new-privs] [--seccomp runtime-default]
//	  --binary PATH -- ARGV0 ARGS...
//
// With --caps it confines the process to those capabilities (an empty
// list: none), as a container runtime does with a container's
// securityContext; a process that is not root has none anyway.
//
// With --bind or --read-only-root it gives the process a mount namespace
// of its own (setupMounts): the pod's volumes at their mountPaths and,
// with --read-only-root (readOnlyRootFilesystem), every other mount
// read-only. With --no-new-privs (allowPrivilegeEscalation: false) it sets
// no_new_privs, and with --seccomp runtime-default it installs the
// seccomp filter of RuntimeDefault for the container's capabilities
// (seccomp.go), as late as it can: just before the exec with
// no_new_privs, before giving up root without (installing a filter
// without no_new_privs needs CAP_SYS_ADMIN).
//
// With --hostname it sets the hostname a container has (the pod's name),
// which is what leader election and logs take as the replica's identity.
// The agent starts it in a UTS namespace of its own for that; the hostname
// is set only if it really is another namespace than the agent's.
//
// The binary is opened while still root and executed through
// /proc/self/fd, so that it may live under a directory its user cannot
// search (a repository in a home directory), as a container's image files
// are always reachable. ARGV0 is what the process sees as its name: the
// image path, e.g. /controller.
func ExecPod(args []string) error {
	// Capability sets (bounding, inheritable) belong to a thread, not to
	// the process, and a process's execve takes the credentials of the
	// thread that calls it. Without this lock limitCaps may confine one
	// OS thread and the exec below run on another that still holds every
	// capability, so the container would run with all of them (CI saw a
	// speaker so).
	runtime.LockOSThread()
	fs := flag.NewFlagSet("pod-exec", flag.ContinueOnError)
	uid := fs.Int("uid", 0, "user to run as")
	gid := fs.Int("gid", 0, "group to run as")
	groups := fs.String("groups", "", "supplementary groups, comma-separated")
	binary := fs.String("binary", "", "the binary to run")
	hostname := fs.String("hostname", "", "hostname to set, in a UTS namespace of its own")
	caps := fs.String("caps", "-", "capabilities to keep, comma-separated (\"\" for none; \"-\" leaves them alone)")
	var binds []bindMount
	fs.Func("bind", "a volume to mount, rw:SRC:DST or ro:SRC:DST (repeatable)", func(v string) error {
		b, err := parseBindMount(v)
		binds = append(binds, b)
		return err
	})
	readOnlyRoot := fs.Bool("read-only-root", false, "make every mount but the volumes (and /proc, /dev/shm ...) read-only")
	noNewPrivs := fs.Bool("no-new-privs", false, "set no_new_privs (allowPrivilegeEscalation: false)")
	seccompProfile := fs.String("seccomp", "unconfined", "seccomp profile: unconfined or runtime-default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seccompProfile != "unconfined" && *seccompProfile != "runtime-default" {
		return fmt.Errorf("pod-exec: --seccomp %q: want unconfined or runtime-default", *seccompProfile)
	}
	argv := fs.Args()
	if *binary == "" || len(argv) == 0 {
		return errors.New("pod-exec: need --binary and, after --, the argv")
	}
	var gids []int
	for _, s := range strings.Split(*groups, ",") {
		if s == "" {
			continue
		}
		g, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("pod-exec: --groups: %w", err)
		}
		gids = append(gids, g)
	}
	f, err := os.Open(*binary)
	if err != nil {
		return fmt.Errorf("pod-exec: %w", err)
	}
	ppid := os.Getppid()
	if *hostname != "" {
		if err := setHostname(*hostname, ppid); err != nil {
			return fmt.Errorf("pod-exec: %w", err)
		}
	}
	if len(binds) > 0 || *readOnlyRoot {
		if err := setupMounts(binds, *readOnlyRoot); err != nil {
			return fmt.Errorf("pod-exec: %w", err)
		}
	}
	// The capabilities the container keeps, which decide part of the
	// seccomp profile: all of them when they are left alone.
	var capNames []string
	if *caps != "-" {
		for _, n := range strings.Split(*caps, ",") {
			if n != "" {
				capNames = append(capNames, n)
			}
		}
		if err := limitCaps(capNames); err != nil {
			return fmt.Errorf("pod-exec: %w", err)
		}
	} else {
		for n := range capNumbers {
			capNames = append(capNames, n)
		}
	}
	var filter []bpf.Instruction
	if *seccompProfile == "runtime-default" {
		if filter, err = runtimeDefaultFilter(nativeSeccompTarget(), capNames); err != nil {
			return fmt.Errorf("pod-exec: %w", err)
		}
		if !*noNewPrivs {
			// Still root with CAP_SYS_ADMIN, which a filter without
			// no_new_privs needs. What follows (setgroups, setgid,
			// setuid, prctl, chdir, execve) is all allowed.
			if err := installSeccomp(filter); err != nil {
				return fmt.Errorf("pod-exec: %w", err)
			}
		}
	}
	// Groups first: once the user is not root, they can no longer change.
	// Go applies these to every thread of the process.
	if err := syscall.Setgroups(gids); err != nil {
		return fmt.Errorf("pod-exec: setgroups: %w", err)
	}
	if err := syscall.Setgid(*gid); err != nil {
		return fmt.Errorf("pod-exec: setgid %d: %w", *gid, err)
	}
	if err := syscall.Setuid(*uid); err != nil {
		return fmt.Errorf("pod-exec: setuid %d: %w", *uid, err)
	}
	// Changing credentials clears the parent-death signal the agent set;
	// set it again so the pod still dies with the agent, and do not start
	// at all if the agent is already gone.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		return fmt.Errorf("pod-exec: set parent-death signal: %w", errno)
	}
	if os.Getppid() != ppid {
		return errors.New("pod-exec: the node agent exited")
	}
	// Both belong to this thread, the one that executes the binary, which
	// inherits them.
	if *noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("pod-exec: set no_new_privs: %w", err)
		}
		if filter != nil {
			if err := installSeccomp(filter); err != nil {
				return fmt.Errorf("pod-exec: %w", err)
			}
		}
	}
	// A container starts in its image's working directory; "/" is the
	// image's and is searchable by every user.
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("pod-exec: %w", err)
	}
	// The descriptor is close-on-exec, which is fine for a static binary:
	// the kernel has opened it before it closes the descriptors.
	path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("pod-exec: exec %s as uid %d: %w", *binary, *uid, err)
	}
	return nil
}

// setHostname sets the hostname, after checking that this process has a
// UTS namespace of its own (its parent, the agent, has the machine's).
func setHostname(name string, ppid int) error {
	own, err := os.Readlink("/proc/self/ns/uts")
	if err != nil {
		return err
	}
	parent, err := os.Readlink("/proc/" + strconv.Itoa(ppid) + "/ns/uts")
	if err != nil {
		return err
	}
	if own == parent {
		return fmt.Errorf("refusing to set the hostname to %q: not in a UTS namespace of its own", name)
	}
	return syscall.Sethostname([]byte(name))
}
