// Package netnstest runs test code inside network namespaces that tests
// create (`ip netns add`), so that nothing is configured in the machine's
// own namespace.
package netnstest

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNS runs fn on an OS thread that has joined network namespace ns. The
// thread stays locked and is not unlocked, so that it exits with the
// goroutine instead of going back to the scheduler in the wrong namespace.
// fn must not rely on goroutines it starts being in ns. Sockets opened by
// fn stay in ns for their whole life, whichever thread uses them later.
func InNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
