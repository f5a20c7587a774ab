// Package cluster builds and tears down the Pharos lab: a real Kubernetes
// cluster made of Linux network namespaces on one machine. The control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), kube-proxy
// in nftables mode on every node, and Pharos itself are the real binaries;
// the only stand-in is the node agent that plays the kubelet.
//
// Every address is in 198.18.0.0/15 or 2001:db8::/32, and every namespace,
// link and file carries the lab's prefix, so that a teardown finds all of
// it, even after a crash. Nothing is configured in the root namespace.
package cluster

import (
	"fmt"
	"net/netip"
)

// Addressing of the lab. The LAN is one L2 segment (a bridge in the switch
// namespace); the load-balancer pool of the demo lies inside it, so that
// clients reach the addresses by ARP and NDP.
var (
	LANv4       = netip.MustParsePrefix("198.18.96.0/19")
	LANv6       = netip.MustParsePrefix("2001:db8:96::/64")
	RemoteV4    = netip.MustParsePrefix("198.18.200.0/24")
	RemoteV6    = netip.MustParsePrefix("2001:db8:200::/64")
	ServiceV4   = netip.MustParsePrefix("198.19.0.0/16")
	ServiceV6   = netip.MustParsePrefix("2001:db8:ffff::/112")
	ClusterV4   = netip.MustParsePrefix("198.18.32.0/19")
	ClusterV6   = netip.MustParsePrefix("2001:db8:42::/48")
	DemoPoolV4  = "198.18.100.0/24"
	DemoPoolV6  = "2001:db8:96::100:0/120"
	APIPort     = 6443
	etcdClient  = "http://127.0.0.1:2379"
	etcdPeerURL = "http://127.0.0.1:2380"
)

// Host is one network namespace on the lab's LAN.
type Host struct {
	// Name is the network namespace's name, which is also the Node name
	// for nodes.
	Name string
	// Port is the name of the host's link on the switch's bridge.
	Port string
	// V4 and V6 are the host's LAN addresses.
	V4, V6 netip.Addr
}

// Node is a Kubernetes node of the lab.
type Node struct {
	Host
	// Index counts nodes from 1.
	Index int
	// PodV4 and PodV6 are the node's pod CIDRs.
	PodV4, PodV6 netip.Prefix
}

// PodGateways returns the node's addresses on its pod bridge.
func (n Node) PodGateways() (netip.Addr, netip.Addr) {
	return n.PodV4.Addr().Next(), n.PodV6.Addr().Next()
}

// Topology names every namespace and address of a lab.
type Topology struct {
	Switch  string
	Control Host
	Router  Host
	Client  Host
	Remote  Host
	Nodes   []Node
}

func lanV4(host byte) netip.Addr {
	b := LANv4.Addr().As4()
	b[3] = host
	return netip.AddrFrom4(b)
}

func lanV6(host byte) netip.Addr {
	b := LANv6.Addr().As16()
	b[15] = host
	return netip.AddrFrom16(b)
}

// NewTopology lays out a lab of n nodes whose names start with prefix.
func NewTopology(prefix string, n int) Topology {
	t := Topology{
		Switch:  prefix + "-sw",
		Control: Host{Name: prefix + "-cp", Port: "cp", V4: lanV4(2), V6: lanV6(2)},
		Router:  Host{Name: prefix + "-router", Port: "router", V4: lanV4(1), V6: lanV6(1)},
		Client:  Host{Name: prefix + "-client", Port: "client", V4: lanV4(100), V6: lanV6(100)},
		Remote:  Host{Name: prefix + "-remote", V4: RemoteV4.Addr().Next().Next(), V6: RemoteV6.Addr().Next().Next()},
	}
	for i := 1; i <= n; i++ {
		c4 := ClusterV4.Addr().As4()
		c4[2] += byte(i)
		c6 := ClusterV6.Addr().As16()
		c6[7] = byte(i)
		t.Nodes = append(t.Nodes, Node{
			Host:  Host{Name: fmt.Sprintf("%s-n%d", prefix, i), Port: fmt.Sprintf("n%d", i), V4: lanV4(byte(10 + i)), V6: lanV6(byte(10 + i))},
			Index: i,
			PodV4: netip.PrefixFrom(netip.AddrFrom4(c4), 24),
			PodV6: netip.PrefixFrom(netip.AddrFrom16(c6), 64),
		})
	}
	return t
}

// LANHosts returns every host with a leg on the LAN.
func (t Topology) LANHosts() []Host {
	hosts := []Host{t.Router, t.Control, t.Client}
	for _, n := range t.Nodes {
		hosts = append(hosts, n.Host)
	}
	return hosts
}

// Namespaces returns every network namespace of the lab except pods'.
func (t Topology) Namespaces() []string {
	ns := []string{t.Switch, t.Remote.Name}
	for _, h := range t.LANHosts() {
		ns = append(ns, h.Name)
	}
	return ns
}

// APIServer returns the apiserver's URL, reachable from every LAN host.
func (t Topology) APIServer() string {
	return fmt.Sprintf("https://%s:%d", t.Control.V4, APIPort)
}
