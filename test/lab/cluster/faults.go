package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Node returns the lab node with the given name or index ("plab-n2", "n2", "2").
func (l *Lab) Node(name string) (Node, error) {
	for _, n := range l.Nodes {
		if n.Name == name || n.Port == name || fmt.Sprint(n.Index) == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("no node %q in the lab; nodes are %s", name, l.nodeNames())
}

func (l *Lab) nodeNames() string {
	var names []string
	for _, n := range l.Nodes {
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}

// CrashNode simulates a hard node failure: every process of the node and of
// its pods is killed at once and its links go down, as when power is cut.
func (l *Lab) CrashNode(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	if err := ip(l.Switch, "link", "set", n.Port, "down"); err != nil {
		return err
	}
	_ = ip(n.Name, "link", "set", "eth0", "down")
	killNamespace(n.Name)
	for _, ns := range listNamespaces(n.Name + "-p") {
		killNamespace(ns)
	}
	for _, c := range []string{"-agent", "-proxy", "-speaker"} {
		_ = l.Stop(n.Name+c, syscall.SIGKILL)
	}
	return nil
}

// RecoverNode brings a crashed node's links up and restarts its components.
func (l *Lab) RecoverNode(ctx context.Context, name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	// Link down dropped the routes through eth0; LinkUp restores them.
	if err := l.LinkUp(n.Name); err != nil {
		return err
	}
	if err := ip(l.Switch, "link", "set", n.Port, "up"); err != nil {
		return err
	}
	for _, c := range []string{"-agent", "-proxy", "-speaker"} {
		if !l.Running(n.Name+c) && l.hasComponent(n.Name+c) {
			if err := l.Restart(n.Name + c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Partition cuts a node off the LAN (its switch port goes down) while its
// processes keep running.
func (l *Lab) Partition(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	return ip(l.Switch, "link", "set", n.Port, "down")
}

// Heal reconnects a partitioned node.
func (l *Lab) Heal(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	return ip(l.Switch, "link", "set", n.Port, "up")
}

// LinkDown takes a node's own LAN interface down (a NIC failure); the
// node's processes keep running.
func (l *Lab) LinkDown(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	return ip(n.Name, "link", "set", "eth0", "down")
}

// LinkUp reverses LinkDown, restoring the node's addresses' routes.
func (l *Lab) LinkUp(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	if err := ip(n.Name, "link", "set", "eth0", "up"); err != nil {
		return err
	}
	// Linux drops a link's IPv6 addresses when it goes down (unless
	// keep_addr_on_down): put them back as a node's network configuration
	// would, or the node stays unreachable over IPv6 (its pods too).
	_ = ip(n.Name, "addr", "replace", fmt.Sprintf("%s/%d", n.V6, LANv6.Bits()), "dev", "eth0", "nodad")
	_ = ip(n.Name, "addr", "replace", fmt.Sprintf("%s/%d", n.V4, LANv4.Bits()), "dev", "eth0")
	_ = ip(n.Name, "route", "replace", "default", "via", l.Router.V4.String())
	_ = ip(n.Name, "-6", "route", "replace", "default", "via", l.Router.V6.String())
	for _, other := range l.Nodes {
		if other.Index != n.Index {
			_ = ip(n.Name, "route", "replace", other.PodV4.String(), "via", other.V4.String())
			_ = ip(n.Name, "-6", "route", "replace", other.PodV6.String(), "via", other.V6.String())
		}
	}
	return nil
}

// RestartAPIServer kills kube-apiserver, as a crash would, and starts it
// again, waiting until it is ready. (A graceful stop waits for watches to
// drain for up to a minute, which tests cannot afford.)
func (l *Lab) RestartAPIServer(ctx context.Context) error {
	if err := l.Stop("kube-apiserver", syscall.SIGKILL); err != nil {
		return err
	}
	// A killed process can hold its listening socket for a moment while
	// it exits; starting the next one before that fails to bind.
	port := fmt.Sprintf("sport = :%d", APIPort)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := runIP("netns", "exec", l.Control.Name, "ss", "-Hltn", port)
		if err == nil && strings.TrimSpace(out) == "" {
			break
		}
	}
	if err := l.Restart("kube-apiserver"); err != nil {
		return err
	}
	return l.waitAPIServer(ctx, 90*time.Second)
}

// StopControlPlane kills kube-apiserver and etcd, as a control-plane
// outage would; StartControlPlane brings them back.
func (l *Lab) StopControlPlane() error {
	if err := l.Stop("kube-apiserver", syscall.SIGKILL); err != nil {
		return err
	}
	return l.Stop("etcd", syscall.SIGKILL)
}

// StartControlPlane starts etcd and kube-apiserver again after
// StopControlPlane, and waits until the apiserver is ready.
func (l *Lab) StartControlPlane(ctx context.Context) error {
	if err := l.Restart("etcd"); err != nil {
		return err
	}
	port := fmt.Sprintf("sport = :%d", APIPort)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := runIP("netns", "exec", l.Control.Name, "ss", "-Hltn", port)
		if err == nil && strings.TrimSpace(out) == "" {
			break
		}
	}
	if err := l.Restart("kube-apiserver"); err != nil {
		return err
	}
	return l.waitAPIServer(ctx, 90*time.Second)
}

func (l *Lab) hasComponent(name string) bool {
	_, err := os.Stat(filepath.Join(l.procDir(), name+".json"))
	return err == nil
}

// Status describes each namespace and component of the lab.
func (l *Lab) Status(ctx context.Context) string {
	var b strings.Builder
	namespaces := listNamespaces(l.Prefix)
	if len(namespaces) == 0 {
		return "no lab is up (prefix " + l.Prefix + "); start one with: make lab\n"
	}
	fmt.Fprintf(&b, "namespaces: %s\n", strings.Join(namespaces, " "))
	entries, _ := os.ReadDir(l.procDir())
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			state := "stopped"
			if pid, running := l.PID(name); running {
				state = fmt.Sprintf("running (pid %d)", pid)
			}
			fmt.Fprintf(&b, "  %-28s %s\n", name, state)
		}
	}
	if out, err := l.Kubectl(ctx, "get", "nodes,svc", "-A", "-o", "wide"); err == nil {
		b.WriteString(out)
	} else {
		fmt.Fprintf(&b, "apiserver: %v\n", err)
	}
	fmt.Fprintf(&b, "kubectl: ip netns exec %s %s --kubeconfig %s get svc -A\n", l.Client.Name, l.bin("kubectl"), l.Kubeconfig())
	return b.String()
}
