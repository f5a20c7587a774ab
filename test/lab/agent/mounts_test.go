package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountinfo(t *testing.T) {
	info := `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / ro,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683652k
30 25 0:27 / /dev/shm ro,relatime - tmpfs tmpfs rw
42 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
50 27 0:40 / /mnt/with\040space rw,nosuid master:3 - tmpfs tmpfs rw
51 27 0:41 / /mnt/back\134slash\011tab ro - tmpfs tmpfs rw

`
	got := parseMountinfo(info)
	want := map[string]bool{"/proc": false, "/": true, "/dev/shm": true, "/run/netns": false, "/mnt/with space": false, "/mnt/back\\slash\ttab": true}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for p, ro := range want {
		if r, ok := got[p]; !ok || r != ro {
			t.Errorf("%q: read-only %v (found %v), want %v", p, r, ok, ro)
		}
	}
	if s := unescapeMountinfo(`a\04`); s != `a\04` {
		t.Errorf("a cut escape: %q", s)
	}
}

func TestBindMountFlag(t *testing.T) {
	for _, b := range []bindMount{{src: "/run/l/volumes/u/tmp", dst: "/tmp"}, {src: "/a", dst: "/b c", readOnly: true}} {
		got, err := parseBindMount(b.String())
		if err != nil || got != b {
			t.Errorf("%+v -> %q -> %+v, %v", b, b.String(), got, err)
		}
	}
	for _, bad := range []string{"rw:/a", "rx:/a:/b", "rw:a:/b", "rw:/a:b", "rw:/a:/b:/c"} {
		if _, err := parseBindMount(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

const (
	envMountsHelper = "LAB_AGENT_MOUNTS_HELPER"
	envMountsSrc    = "LAB_AGENT_MOUNTS_SRC"
	envMountsDst    = "LAB_AGENT_MOUNTS_DST"
)

// mountsHelper sets up a read-only root with one volume, as the launcher
// does for the controller's /tmp, and reports which writes work.
func mountsHelper() {
	runtime.LockOSThread()
	src, dst := os.Getenv(envMountsSrc), os.Getenv(envMountsDst)
	if err := setupMounts([]bindMount{{src: src, dst: dst}}, true); err != nil {
		fmt.Println("setup:", err)
		os.Exit(1)
	}
	try := func(what string, err error) {
		switch {
		case err == nil:
			fmt.Printf("%s: ok\n", what)
		case errors.Is(err, unix.EROFS):
			fmt.Printf("%s: EROFS\n", what)
		default:
			fmt.Printf("%s: %v\n", what, err)
		}
	}
	create := func(p string) error {
		f, err := os.Create(p)
		if err == nil {
			err = f.Close()
		}
		return err
	}
	try("create in /", create(fmt.Sprintf("/plabtest-ro-%d", os.Getpid())))
	try("create in the volume", create(filepath.Join(dst, "written")))
	try("create next to the volume", create(filepath.Join(filepath.Dir(dst), fmt.Sprintf("plabtest-ro-%d", os.Getpid()))))
	w, err := os.OpenFile("/proc/sys/kernel/hostname", os.O_WRONLY, 0)
	if err == nil {
		_ = w.Close()
	}
	try("open a sysctl for writing", err)
	try("write /proc/thread-self/comm", os.WriteFile("/proc/thread-self/comm", []byte("plabtest"), 0))
	try("write /dev/null", os.WriteFile("/dev/null", []byte("x"), 0))
	info, _ := os.ReadFile("/proc/thread-self/mountinfo")
	m := parseMountinfo(string(info))
	fmt.Printf("mount / read-only: %v\nmount volume read-only: %v\nmount /proc read-only: %v\n", m["/"], m[dst], m["/proc"])
	os.Exit(0)
}

// TestReadOnlyRootInKernel (root) runs setupMounts in a child process:
// nothing but the volume, /proc (without its sysctls) and device nodes can
// be written, and the machine's own mounts are left as they were.
func TestReadOnlyRootInKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespaces)")
	}
	src, dst := t.TempDir(), t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMountsHelper+"=1", envMountsSrc+"="+src, envMountsDst+"="+dst)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"create in /: EROFS", "create in the volume: ok", "create next to the volume: EROFS",
		"open a sysctl for writing: EROFS", "write /proc/thread-self/comm: ok", "write /dev/null: ok",
		"mount / read-only: true", "mount volume read-only: false", "mount /proc read-only: false",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// The file went to the volume's directory, not to the mountPath.
	if _, err := os.Stat(filepath.Join(src, "written")); err != nil {
		t.Errorf("the volume's directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "written")); err == nil {
		t.Error("the write reached the machine's directory under the mountPath")
	}
	info, _ := os.ReadFile("/proc/self/mountinfo")
	if parseMountinfo(string(info))["/"] {
		t.Error("the machine's root is read-only now")
	}
}
