//go:build !amd64 && !arm64

package agent

// The lab has no system call table for this architecture: a pod that asks
// for seccomp RuntimeDefault fails to start (runtimeDefaultFilter says
// why).
const (
	seccompArch = 0
	seccompX32  = false
)

var seccompSyscalls map[string]uint32
