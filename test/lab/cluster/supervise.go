package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// The kubelet's restart back-off for a container that exits: 10 s,
// doubling, at most 5 minutes, reset after 10 minutes of running.
var (
	restartInitial = 10 * time.Second
	restartMax     = 5 * time.Minute
	restartReset   = 10 * time.Minute
)

// Supervise runs argv and runs it again whenever it exits, after the
// kubelet's back-off, as a Deployment's or DaemonSet's pod is restarted:
// so that after an apiserver outage, in which the controller exits on
// "leader election lost", the lab has a controller again, as a cluster
// would. It writes each run's pid to pidfile. It stops when ctx ends (a
// SIGTERM or SIGINT to the lab's process group, which the child gets too),
// without restarting; a SIGKILL to the group (a crash) kills it with the
// child.
func Supervise(ctx context.Context, pidfile string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("supervise: no command")
	}
	backoff := restartInitial
	for {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			return err
		}
		started := time.Now()
		err := cmd.Wait()
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > restartReset {
			backoff = restartInitial
		}
		fmt.Fprintf(os.Stderr, "lab supervise: %s exited (%v) after %s; restarting in %s, as the kubelet would\n",
			argv[0], err, time.Since(started).Round(time.Second), backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		// The lab is gone (torn down while this waited): nothing to run.
		if _, err := os.Stat(filepath.Dir(pidfile)); err != nil {
			return nil
		}
		backoff = min(2*backoff, restartMax)
	}
}
