package cluster

import (
	"context"
	"fmt"
)

// buildNetwork creates the namespaces, the LAN bridge, the router and the
// remote client, and the nodes' pod bridges and routes.
func (l *Lab) buildNetwork(context.Context) error {
	for _, ns := range l.Namespaces() {
		if err := ip("", "netns", "add", ns); err != nil {
			return err
		}
		if err := ip(ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := ip(l.Switch, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := ip(l.Switch, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for _, h := range l.LANHosts() {
		if err := l.plug(h); err != nil {
			return err
		}
	}
	// The router forwards between the LAN and the remote subnet.
	r := l.Router
	for _, cmd := range [][]string{
		{"link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", l.Remote.Name},
		{"addr", "add", RemoteV4.Addr().Next().String() + "/24", "dev", "eth1"},
		{"addr", "add", RemoteV6.Addr().Next().String() + "/64", "dev", "eth1", "nodad"},
		{"link", "set", "eth1", "up"},
	} {
		if err := ip(r.Name, cmd...); err != nil {
			return err
		}
	}
	for _, cmd := range [][]string{
		{"addr", "add", l.Remote.V4.String() + "/24", "dev", "eth0"},
		{"addr", "add", l.Remote.V6.String() + "/64", "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", RemoteV4.Addr().Next().String()},
		{"-6", "route", "add", "default", "via", RemoteV6.Addr().Next().String()},
	} {
		if err := ip(l.Remote.Name, cmd...); err != nil {
			return err
		}
	}
	for _, ns := range []string{r.Name} {
		if err := sysctl(ns, "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		if err := sysctl(ns, "net.ipv6.conf.all.forwarding", "1"); err != nil {
			return err
		}
	}
	for _, h := range []Host{l.Control, l.Client} {
		if err := l.defaultRoutes(h.Name); err != nil {
			return err
		}
	}
	for _, n := range l.Nodes {
		if err := l.buildNode(n); err != nil {
			return err
		}
		// The apiserver dials webhooks and aggregated APIs at their pods'
		// addresses (--enable-aggregator-routing), straight to the node
		// that hosts them, as on a cluster with a flat pod network. The
		// replies need nothing: a node reaches the LAN directly.
		if err := ip(l.Control.Name, "route", "add", n.PodV4.String(), "via", n.V4.String()); err != nil {
			return err
		}
		if err := ip(l.Control.Name, "-6", "route", "add", n.PodV6.String(), "via", n.V6.String()); err != nil {
			return err
		}
	}
	return nil
}

// plug connects a host to the LAN bridge with its addresses.
func (l *Lab) plug(h Host) error {
	if err := ip(l.Switch, "link", "add", h.Port, "type", "veth", "peer", "name", "eth0", "netns", h.Name); err != nil {
		return err
	}
	if err := ip(l.Switch, "link", "set", h.Port, "master", "br0", "up"); err != nil {
		return err
	}
	for _, cmd := range [][]string{
		{"addr", "add", fmt.Sprintf("%s/%d", h.V4, LANv4.Bits()), "dev", "eth0"},
		{"addr", "add", fmt.Sprintf("%s/%d", h.V6, LANv6.Bits()), "dev", "eth0", "nodad"},
		{"link", "set", "eth0", "up"},
	} {
		if err := ip(h.Name, cmd...); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) defaultRoutes(ns string) error {
	if err := ip(ns, "route", "add", "default", "via", l.Router.V4.String()); err != nil {
		return err
	}
	return ip(ns, "-6", "route", "add", "default", "via", l.Router.V6.String())
}

// buildNode gives a node its pod bridge, forwarding and routes to the
// other nodes' pods.
func (l *Lab) buildNode(n Node) error {
	gw4, gw6 := n.PodGateways()
	for _, cmd := range [][]string{
		{"link", "add", "cbr0", "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", gw4, n.PodV4.Bits()), "dev", "cbr0"},
		{"addr", "add", fmt.Sprintf("%s/%d", gw6, n.PodV6.Bits()), "dev", "cbr0", "nodad"},
		{"link", "set", "cbr0", "up"},
	} {
		if err := ip(n.Name, cmd...); err != nil {
			return err
		}
	}
	for k, v := range map[string]string{
		"net.ipv4.ip_forward":          "1",
		"net.ipv6.conf.all.forwarding": "1",
		// kube-proxy's NodePorts on localhost and replies through the
		// bridge need these, as on a real node.
		"net.ipv4.conf.all.route_localnet": "1",
		"net.ipv4.conf.all.rp_filter":      "0",
	} {
		if err := sysctl(n.Name, k, v); err != nil {
			return err
		}
	}
	for _, other := range l.Nodes {
		if other.Index == n.Index {
			continue
		}
		if err := ip(n.Name, "route", "add", other.PodV4.String(), "via", other.V4.String()); err != nil {
			return err
		}
		if err := ip(n.Name, "-6", "route", "add", other.PodV6.String(), "via", other.V6.String()); err != nil {
			return err
		}
	}
	return l.defaultRoutes(n.Name)
}
