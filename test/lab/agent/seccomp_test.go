package agent

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData is a synthetic struct seccomp_data as the filter reads it.
// The kernel loads its 32-bit words in the machine's byte order and
// x/net/bpf's VM in network order, so each word is written big-endian at
// its offset: the VM then sees the values the kernel would. A 64-bit
// argument is two words, the low one first (little-endian machines).
func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[seccompDataNr:], nr)
	binary.BigEndian.PutUint32(b[seccompDataArch:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i+4:], uint32(a>>32))
	}
	return b
}

// testTargets are the architectures the lab has tables for, with a few
// numbers of their own for the tests.
var testTargets = map[string]*seccompTarget{
	"amd64": {arch: unix.AUDIT_ARCH_X86_64, x32: true, syscalls: map[string]uint32{
		"read": 0, "write": 1, "mmap": 9, "ioctl": 16, "socket": 41, "clone": 56, "execve": 59,
		"personality": 135, "mount": 165, "futex": 202, "clone3": 435, "ptrace": 101, "setns": 308,
	}},
	"arm64": {arch: unix.AUDIT_ARCH_AARCH64, syscalls: map[string]uint32{
		"read": 63, "write": 64, "mmap": 222, "ioctl": 29, "socket": 198, "clone": 220, "execve": 221,
		"personality": 92, "mount": 40, "futex": 98, "clone3": 435, "ptrace": 117, "setns": 268,
	}},
}

func runFilter(t *testing.T, prog []bpf.Instruction, data []byte) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func action(v uint32) string {
	switch {
	case v == unix.SECCOMP_RET_ALLOW:
		return "allow"
	case v == unix.SECCOMP_RET_KILL_PROCESS:
		return "kill"
	case v&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO:
		return unix.Errno(v & unix.SECCOMP_RET_DATA).Error()
	}
	return fmt.Sprintf("%#x", v)
}

// TestRuntimeDefaultFilter runs the assembled filter through x/net/bpf's
// VM on synthetic seccomp_data, for the small tables above.
func TestRuntimeDefaultFilter(t *testing.T) {
	eperm, enosys := unix.EPERM.Error(), unix.ENOSYS.Error()
	for name, target := range testTargets {
		t.Run(name, func(t *testing.T) {
			nr := target.syscalls
			run := func(prog []bpf.Instruction, nr uint32, args ...uint64) string {
				return action(runFilter(t, prog, seccompData(target.arch, nr, args...)))
			}
			speaker, err := runtimeDefaultFilter(target, []string{"NET_ADMIN", "NET_RAW"})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				what string
				nr   uint32
				args []uint64
				want string
			}{
				{"read", nr["read"], nil, "allow"},
				{"write", nr["write"], nil, "allow"},
				{"futex", nr["futex"], nil, "allow"},
				{"socket", nr["socket"], []uint64{unix.AF_PACKET, unix.SOCK_RAW}, "allow"},
				{"ptrace (Linux 4.8 and later)", nr["ptrace"], nil, "allow"},
				{"mount", nr["mount"], nil, eperm},
				{"setns", nr["setns"], nil, eperm},
				{"a number beyond every table", 1000, nil, eperm},
				{"clone of a thread", nr["clone"], []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD}, "allow"},
				{"clone into a new network namespace", nr["clone"], []uint64{unix.CLONE_NEWNET}, eperm},
				{"clone into a new user namespace", nr["clone"], []uint64{uint64(unix.SIGCHLD) | unix.CLONE_NEWUSER}, eperm},
				{"clone3, for a libc to fall back to clone", nr["clone3"], nil, enosys},
				{"personality PER_LINUX", nr["personality"], []uint64{0}, "allow"},
				{"personality query", nr["personality"], []uint64{0xffffffff}, "allow"},
				{"personality UNAME26|PER_LINUX32", nr["personality"], []uint64{0x20008}, "allow"},
				{"personality READ_IMPLIES_EXEC", nr["personality"], []uint64{0x0400000}, eperm},
				{"personality with a high word", nr["personality"], []uint64{1 << 32}, eperm},
			} {
				if got := run(speaker, tc.nr, tc.args...); got != tc.want {
					t.Errorf("%s: %s, want %s", tc.what, got, tc.want)
				}
			}

			// Another ABI is not read at all; x32 calls fail.
			if got := action(runFilter(t, speaker, seccompData(unix.AUDIT_ARCH_I386, nr["read"]))); got != "kill" {
				t.Errorf("a call of another architecture: %s, want kill", got)
			}
			if got := run(speaker, nr["read"]|x32SyscallBit); target.x32 && got != eperm {
				t.Errorf("an x32 read: %s, want %s", got, eperm)
			}

			// CAP_SYS_ADMIN brings mount, setns and namespaces back.
			admin, err := runtimeDefaultFilter(target, []string{"SYS_ADMIN"})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				what string
				nr   uint32
				args []uint64
			}{{"mount", nr["mount"], nil}, {"setns", nr["setns"], nil}, {"clone3", nr["clone3"], nil}, {"clone(CLONE_NEWNET)", nr["clone"], []uint64{unix.CLONE_NEWNET}}} {
				if got := run(admin, tc.nr, tc.args...); got != "allow" {
					t.Errorf("with CAP_SYS_ADMIN, %s: %s, want allow", tc.what, got)
				}
			}
		})
	}
	if _, err := runtimeDefaultFilter(nil, nil); err == nil {
		t.Error("a filter without a system call table")
	}
}

// TestRuntimeDefaultFilterNative checks the filter for this machine's table
// number by number: everything RuntimeDefault allows passes, and every
// other number up to past the table's end fails with EPERM, the
// conditional ones aside.
func TestRuntimeDefaultFilterNative(t *testing.T) {
	target := nativeSeccompTarget()
	if target == nil {
		t.Skipf("no system call table for %s", runtime.GOARCH)
	}
	prog, err := runtimeDefaultFilter(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions for %d system calls", len(prog), len(target.syscalls))
	allowed := map[uint32]string{}
	for _, n := range runtimeDefaultAllowed {
		if nr, ok := target.syscalls[n]; ok {
			allowed[nr] = n
		}
	}
	conditional := map[uint32]bool{target.syscalls["clone"]: true, target.syscalls["clone3"]: true, target.syscalls["personality"]: true}
	for nr := uint32(0); nr < 600; nr++ {
		if conditional[nr] {
			continue
		}
		got := action(runFilter(t, prog, seccompData(target.arch, nr)))
		want := unix.EPERM.Error()
		if _, ok := allowed[nr]; ok {
			want = "allow"
		}
		if got != want {
			t.Errorf("system call %d (%s): %s, want %s", nr, allowed[nr], got, want)
		}
	}
}

// TestSeccompSyscallTable: the table of this architecture has what every
// Go process needs, and what the profile must refuse is refused by
// number, from x/sys's own constants.
func TestSeccompSyscallTable(t *testing.T) {
	target := nativeSeccompTarget()
	if target == nil {
		t.Skipf("no system call table for %s", runtime.GOARCH)
	}
	for _, n := range []string{"read", "write", "openat", "close", "mmap", "munmap", "futex", "clone", "execve",
		"exit_group", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "sched_getaffinity",
		"epoll_pwait", "epoll_ctl", "getrandom", "socket", "bind", "sendto", "recvfrom", "setsockopt", "tgkill", "nanosleep"} {
		if _, ok := target.syscalls[n]; !ok {
			t.Errorf("the %s table lacks %s", runtime.GOARCH, n)
		}
	}
	prog, err := runtimeDefaultFilter(target, []string{"NET_RAW"})
	if err != nil {
		t.Fatal(err)
	}
	for name, nr := range map[string]uintptr{
		"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "pivot_root": unix.SYS_PIVOT_ROOT,
		"reboot": unix.SYS_REBOOT, "kexec_load": unix.SYS_KEXEC_LOAD, "kexec_file_load": unix.SYS_KEXEC_FILE_LOAD,
		"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
		"swapon": unix.SYS_SWAPON, "swapoff": unix.SYS_SWAPOFF, "acct": unix.SYS_ACCT,
		"settimeofday": unix.SYS_SETTIMEOFDAY, "clock_settime": unix.SYS_CLOCK_SETTIME, "syslog": unix.SYS_SYSLOG,
		"bpf": unix.SYS_BPF, "perf_event_open": unix.SYS_PERF_EVENT_OPEN, "add_key": unix.SYS_ADD_KEY,
		"request_key": unix.SYS_REQUEST_KEY, "keyctl": unix.SYS_KEYCTL, "open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT,
		"name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT, "userfaultfd": unix.SYS_USERFAULTFD, "unshare": unix.SYS_UNSHARE,
		"setns": unix.SYS_SETNS, "get_mempolicy": unix.SYS_GET_MEMPOLICY, "chroot": unix.SYS_CHROOT,
		"process_vm_readv": unix.SYS_PROCESS_VM_READV, "kcmp": unix.SYS_KCMP, "fsopen": unix.SYS_FSOPEN,
	} {
		if got := action(runFilter(t, prog, seccompData(target.arch, uint32(nr)))); got != unix.EPERM.Error() {
			t.Errorf("%s: %s, want EPERM", name, got)
		}
	}
}

const envSeccompHelper = "LAB_AGENT_SECCOMP_HELPER"

// seccompHelper installs the filter with no_new_privs, as the launcher
// does for a container that is not root, and reports what the kernel
// then answers to a few system calls.
func seccompHelper() {
	runtime.LockOSThread()
	report := func(what string, err error) {
		if err == nil {
			fmt.Printf("%s: ok\n", what)
		} else {
			fmt.Printf("%s: %v\n", what, err)
		}
	}
	prog, err := runtimeDefaultFilter(nativeSeccompTarget(), nil)
	if err == nil {
		err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	if err == nil {
		err = installSeccomp(prog)
	}
	report("install", err)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", errnoErr(errno))
	// Allowed to anyone without the filter.
	_, _, errno = unix.RawSyscall6(unix.SYS_GET_MEMPOLICY, 0, 0, 0, 0, 0, 0)
	report("get_mempolicy", errnoErr(errno))
	keyring := int32(unix.KEY_SPEC_PROCESS_KEYRING) // -2, as the int argument it is
	_, _, errno = unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(uint32(keyring)), 0)
	report("keyctl", errnoErr(errno))
	// EINVAL without the filter (no arguments).
	_, _, errno = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	report("clone3", errnoErr(errno))
	// ENOENT as root, EPERM otherwise, without the filter.
	report("mount", unix.Mount("none", "/nonexistent-plabtest", "tmpfs", 0, ""))
	status, _ := os.ReadFile("/proc/thread-self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Seccomp:") || strings.HasPrefix(l, "NoNewPrivs:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
	os.Exit(0)
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestSeccompInKernel installs the filter in a child process and checks
// the kernel's answers: what the profile refuses fails with EPERM (clone3
// with ENOSYS), the rest works.
func TestSeccompInKernel(t *testing.T) {
	if nativeSeccompTarget() == nil {
		t.Skipf("no system call table for %s", runtime.GOARCH)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envSeccompHelper+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"install: ok", "getpid: ok", "get_mempolicy: operation not permitted", "keyctl: operation not permitted",
		"clone3: function not implemented", "mount: operation not permitted", "Seccomp: 2", "NoNewPrivs: 1",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
