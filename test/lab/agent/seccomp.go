package agent

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp profile RuntimeDefault, as containerd builds it for a
// container (contrib/seccomp's DefaultProfile, which CRI uses for
// Kubernetes' RuntimeDefault, and which Docker's default profile matches):
// an allowlist, so every system call not named here fails with EPERM.
// Among those that fail: mount, umount2, pivot_root, unshare, setns,
// reboot, kexec_load, kexec_file_load, init_module, finit_module,
// delete_module, swapon, swapoff, acct, settimeofday, clock_settime,
// syslog, bpf, perf_event_open, add_key, request_key, keyctl,
// open_by_handle_at, name_to_handle_at, userfaultfd, get_mempolicy, and
// any call newer than the list. clone is allowed only without namespace
// flags, clone3 fails with ENOSYS (so that libcs fall back to clone) and
// personality is allowed only for the personas a container may switch to.
// Some of those come back with the capability they need (CAP_SYS_ADMIN
// brings mount, unshare, clone with namespace flags ...), as containerd
// adds them when the container's bounding set has that capability.
//
// As in containerd's current profile, adjtimex and clock_adjtime are
// allowed (the kernel itself refuses to change the clock without
// CAP_SYS_TIME), and so is ptrace (the profile allows it from Linux 4.8,
// whose ptrace no longer lets a process bypass seccomp).
//
// The filter reads system calls of this machine's architecture only
// (seccompArch): a call through another ABI (i386's int 0x80) kills the
// process, and on amd64 every x32 call fails with EPERM. containerd
// filters those by the same names instead; nothing the lab runs uses them.

// runtimeDefaultAllowed are the system calls RuntimeDefault allows to every
// container. Names that do not exist on this architecture are ignored
// (seccompSyscalls has those that do).
var runtimeDefaultAllowed = []string{
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk",
	"capget", "capset", "chdir", "chmod", "chown", "chown32",
	"clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
	"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
	"close", "close_range", "connect", "copy_file_range", "creat",
	"dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
	"epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
	"execve", "execveat", "exit", "exit_group",
	"faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
	"fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
	"fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
	"fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
	"futex", "futex_time64", "futex_waitv", "futimesat",
	"getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32",
	"getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
	"getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
	"getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
	"gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
	"io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
	"ioprio_get", "ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
	"ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
	"lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
	"_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
	"madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
	"mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
	"mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
	"mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
	"msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
	"nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
	"pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64",
	"prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
	"pselect6", "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2",
	"read", "readahead", "readlink", "readlinkat", "readv",
	"recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
	"removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
	"rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
	"rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
	"sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
	"sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
	"sched_setscheduler", "sched_yield", "seccomp", "select",
	"semctl", "semget", "semop", "semtimedop", "semtimedop_time64",
	"send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
	"setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
	"setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
	"setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
	"setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
	"shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
	"sigprocmask", "sigreturn", "socket", "socketcall", "socketpair", "splice",
	"stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat",
	"sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
	"timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
	"timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
	"timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
	"ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
	"utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
	// Architecture-specific ones: amd64, then arm and arm64.
	"arch_prctl", "modify_ldt",
	"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls",
}

// runtimeDefaultByCap are the system calls RuntimeDefault allows only to a
// container whose bounding set has the capability (Kubernetes' name).
var runtimeDefaultByCap = map[string][]string{
	"DAC_READ_SEARCH": {"open_by_handle_at"},
	"SYS_ADMIN": {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
		"lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
		"perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog",
		"umount", "umount2", "unshare"},
	"SYS_BOOT":       {"reboot"},
	"SYS_CHROOT":     {"chroot"},
	"SYS_MODULE":     {"delete_module", "init_module", "finit_module"},
	"SYS_PACCT":      {"acct"},
	"SYS_PTRACE":     {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"},
	"SYS_RAWIO":      {"iopl", "ioperm"},
	"SYS_TIME":       {"settimeofday", "stime", "clock_settime", "clock_settime64"},
	"SYS_TTY_CONFIG": {"vhangup"},
	"SYSLOG":         {"syslog"},
	"BPF":            {"bpf"},
	"PERFMON":        {"perf_event_open"},
}

// personalitiesAllowed are the personality(2) arguments RuntimeDefault
// lets through: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26 and
// 0xffffffff (which only queries the persona).
var personalitiesAllowed = []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// cloneNamespaceFlags are the flags of clone(2) that create namespaces:
// without CAP_SYS_ADMIN, RuntimeDefault refuses a clone with any of them.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Offsets in struct seccomp_data: nr (int), arch (u32),
// instruction_pointer (u64), args[6] (u64). Loads are 32-bit words in the
// machine's byte order; amd64 and arm64 are little-endian, so an
// argument's low word comes first.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// x32SyscallBit marks amd64's x32 system calls, which arrive with the
// native arch: a filter that ignored it would let them through.
const x32SyscallBit = 0x40000000

var (
	seccompAllow = bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	seccompEPERM = bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)&unix.SECCOMP_RET_DATA}
	seccompNoSys = bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)&unix.SECCOMP_RET_DATA}
	seccompKill  = bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS}
)

// seccompTarget is an architecture as a seccomp filter sees it.
type seccompTarget struct {
	arch     uint32            // AUDIT_ARCH_*
	x32      bool              // amd64: refuse calls with x32SyscallBit
	syscalls map[string]uint32 // system call numbers by name
}

// nativeSeccompTarget is this machine's architecture, or nil where the lab
// has no system call table (seccomp_<arch>.go).
func nativeSeccompTarget() *seccompTarget {
	if seccompSyscalls == nil {
		return nil
	}
	return &seccompTarget{arch: seccompArch, x32: seccompX32, syscalls: seccompSyscalls}
}

// syscallRule is what the filter does with one system call number: the
// instructions that end in a return, with the call's number in A.
type syscallRule struct {
	nr   uint32
	code []bpf.Instruction
}

// runtimeDefaultFilter returns the BPF program of RuntimeDefault for a
// container with the capabilities caps (Kubernetes' names, as
// containerCaps gives them), for target.
func runtimeDefaultFilter(target *seccompTarget, caps []string) ([]bpf.Instruction, error) {
	if target == nil {
		return nil, errors.New("seccomp RuntimeDefault: the lab has no system call table for this architecture (amd64 and arm64 only)")
	}
	rules := map[uint32][]bpf.Instruction{}
	allow := func(names []string) {
		for _, n := range names {
			if nr, ok := target.syscalls[n]; ok {
				rules[nr] = []bpf.Instruction{seccompAllow}
			}
		}
	}
	allow(runtimeDefaultAllowed)
	admin := slices.Contains(caps, "SYS_ADMIN")
	for _, c := range caps {
		allow(runtimeDefaultByCap[c])
	}
	if nr, ok := target.syscalls["personality"]; ok {
		rules[nr] = personalityRule()
	}
	if !admin {
		if nr, ok := target.syscalls["clone"]; ok {
			rules[nr] = cloneRule()
		}
		if nr, ok := target.syscalls["clone3"]; ok {
			rules[nr] = []bpf.Instruction{seccompNoSys}
		}
	}
	sorted := make([]syscallRule, 0, len(rules))
	for nr, code := range rules {
		sorted = append(sorted, syscallRule{nr: nr, code: code})
	}
	slices.SortFunc(sorted, func(a, b syscallRule) int { return int(a.nr) - int(b.nr) })

	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: target.arch, SkipTrue: 1},
		seccompKill,
		bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
	}
	if target.x32 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			seccompEPERM)
	}
	prog = append(prog, syscallTree(sorted)...)
	if len(prog) > 4096 { // BPF_MAXINSNS
		return nil, fmt.Errorf("seccomp RuntimeDefault: %d instructions, more than the kernel takes", len(prog))
	}
	return prog, nil
}

// syscallTree returns a binary search over rules (sorted by number) on the
// number in A: log2(n) comparisons rather than n, as every system call of
// the process runs it. Every path ends in a return: a rule's own, or
// EPERM for a number that has none. Unconditional jumps carry the long
// distances, as a conditional one reaches only 255 instructions.
func syscallTree(rules []syscallRule) []bpf.Instruction {
	const leaf = 4
	if len(rules) <= leaf {
		var code []bpf.Instruction
		for _, r := range rules {
			code = append(code, bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr, SkipFalse: uint8(len(r.code))})
			code = append(code, r.code...)
		}
		return append(code, seccompEPERM)
	}
	mid := len(rules) / 2
	left, right := syscallTree(rules[:mid]), syscallTree(rules[mid:])
	code := []bpf.Instruction{
		// A >= the right half's first number: on to the jump over the
		// left half; otherwise skip that jump.
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: rules[mid].nr, SkipFalse: 1},
		bpf.Jump{Skip: uint32(len(left))},
	}
	code = append(code, left...)
	return append(code, right...)
}

// personalityRule allows personality(2) with one of personalitiesAllowed
// as its 64-bit argument, and refuses it otherwise.
func personalityRule() []bpf.Instruction {
	n := len(personalitiesAllowed)
	code := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArgs + 4, Size: 4}, // high word
		// Not zero: to the EPERM after the comparisons.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: uint8(n + 1)},
		bpf.LoadAbsolute{Off: seccompDataArgs, Size: 4},
	}
	for i, v := range personalitiesAllowed {
		// Equal: to the ALLOW, past the remaining comparisons and the
		// EPERM.
		code = append(code, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: uint8(n - i)})
	}
	return append(code, seccompEPERM, seccompAllow)
}

// cloneRule allows clone(2) unless its flags (the first argument on amd64
// and arm64) ask for a new namespace.
func cloneRule() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArgs, Size: 4}, // the flags are in the low word
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: cloneNamespaceFlags, SkipFalse: 1},
		seccompEPERM,
		seccompAllow,
	}
}

// installSeccomp loads prog as the calling thread's seccomp filter, which
// the program it then executes inherits. Without no_new_privs the thread
// needs CAP_SYS_ADMIN.
func installSeccomp(prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	return nil
}
