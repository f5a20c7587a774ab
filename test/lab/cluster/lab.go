package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Options configure a lab.
type Options struct {
	// Prefix starts the name of every namespace of the lab ("plab").
	Prefix string
	// NodeCount is the number of Kubernetes nodes (3).
	NodeCount int
	// Dir holds kubeconfigs, keys, logs and state ("_output/lab").
	Dir string
	// KubeBinDir holds kube-apiserver, kube-controller-manager,
	// kube-scheduler, kube-proxy, kubectl and etcd.
	KubeBinDir string
	// LabBinary is the lab command itself, which also runs the node agents
	// and the pods' echo servers.
	LabBinary string
	// ControllerBinary is Pharos's controller; empty skips it.
	ControllerBinary string
	// SpeakerBinary is Pharos's speaker, run on every node; empty skips it.
	SpeakerBinary string
	// RepoRoot is the repository, for the CRDs and RBAC in config/.
	RepoRoot string
	// Pharos says how Pharos gets into the lab: PharosProcesses (the
	// default) installs config/'s CRDs and RBAC and runs the controller
	// and speakers as lab components; PharosNone installs nothing, for a
	// test that installs the Helm chart. Either way the node agents run
	// pods of PharosImage as the real ControllerBinary and SpeakerBinary
	// (command /controller and /speaker), under the pod's ServiceAccount.
	Pharos string
	// Out receives progress lines.
	Out io.Writer
}

// Values of Options.Pharos.
const (
	PharosProcesses = "processes"
	PharosNone      = "none"
)

// PharosImage is the repository of Pharos's image: the node agents run its
// pods (any tag) as the real binaries. PharosImageUser is the image's USER
// (uid and gid), which a pod without runAsUser runs as.
const (
	PharosImage     = "ghcr.io/pharos-lb/pharos"
	PharosImageUser = 65532
)

// Lab is a lab's topology and state directory.
type Lab struct {
	Options
	Topology
	adminToken string
}

// New returns a lab handle; it changes nothing.
func New(o Options) (*Lab, error) {
	if o.Prefix == "" {
		o.Prefix = "plab"
	}
	if o.NodeCount <= 0 {
		o.NodeCount = 3
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	switch o.Pharos {
	case "":
		o.Pharos = PharosProcesses
	case PharosProcesses, PharosNone:
	default:
		return nil, fmt.Errorf("Options.Pharos is %q; want %q or %q", o.Pharos, PharosProcesses, PharosNone)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	return &Lab{Options: o, Topology: NewTopology(o.Prefix, o.NodeCount)}, nil
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.Out, "lab: "+format+"\n", args...)
}

// CheckHost says what is missing to run a lab on this machine.
func CheckHost() error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errNotRoot
	}
	for _, tool := range []string{"ip", "nsenter", "nft", "iptables", "conntrack", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab needs %s: install iproute2, util-linux, nftables, iptables, conntrack and procps (hack/ci-deps.sh does)", tool)
		}
	}
	return nil
}

// Kubeconfig returns the path of the admin kubeconfig.
func (l *Lab) Kubeconfig() string { return filepath.Join(l.Dir, "admin.kubeconfig") }

func (l *Lab) pkiDir() string { return filepath.Join(l.Dir, "pki") }

// PodStateDir holds the tokens and kubeconfigs the node agents write for
// Pharos pods. Pods that run as a user other than root read them by path,
// so it is under /run rather than l.Dir, whose parents (a home directory)
// may not be searchable by them; Down removes it.
func (l *Lab) PodStateDir() string { return "/run/" + l.Prefix + "-lab" }

// Up builds the lab from nothing: it first removes what an earlier lab of
// the same prefix left, and tears down what it built if a step fails.
func (l *Lab) Up(ctx context.Context) (err error) {
	if err := CheckHost(); err != nil {
		return err
	}
	start := time.Now()
	if err := l.Down(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			logs := l.LogDir() + ".failed"
			_ = os.RemoveAll(logs)
			_ = os.Rename(l.LogDir(), logs)
			_ = l.Down()
			err = fmt.Errorf("%w (the lab was torn down; component logs are in %s)", err, logs)
		}
	}()
	for _, dir := range []string{l.Dir, l.pkiDir(), l.LogDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"network", l.buildNetwork},
		{"credentials", l.writeCredentials},
		{"control plane", l.startControlPlane},
		{"nodes", l.startNodes},
		{"pharos", l.installPharos},
		{"ready", l.waitReady},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("lab %s: %w", s.name, err)
		}
		l.logf("%s ready in %.1fs", s.name, time.Since(t).Seconds())
	}
	l.logf("up in %.1fs; kubectl: export KUBECONFIG=%s", time.Since(start).Seconds(), l.Kubeconfig())
	return nil
}

// Down removes every process, namespace and file of the lab. It is safe to
// call on a lab that does not exist or was half built.
func (l *Lab) Down() error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errNotRoot
	}
	entries, _ := os.ReadDir(l.procDir())
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".pid"); ok {
			if pid, running := l.pid(name); running {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}
	namespaces := listNamespaces(l.Prefix)
	for _, ns := range namespaces {
		killNamespace(ns)
	}
	var failed []string
	for _, ns := range namespaces {
		if err := ip("", "netns", "del", ns); err != nil {
			failed = append(failed, err.Error())
		}
	}
	for _, dir := range []string{l.Dir, l.PodStateDir()} {
		if err := os.RemoveAll(dir); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("lab teardown left something behind: %s", strings.Join(failed, "; "))
	}
	return nil
}

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

// writeCredentials creates the lab CA and the apiserver's certificate, the
// service-account key pair, the static tokens and one kubeconfig per
// identity.
func (l *Lab) writeCredentials(context.Context) error {
	if err := l.writePKI(); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.pkiDir(), "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.pkiDir(), "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	var tokens strings.Builder
	for _, id := range l.identities() {
		tok := randomToken()
		if id.file == "admin" {
			l.adminToken = tok
		}
		fmt.Fprintf(&tokens, "%s,%s,%s,\"%s\"\n", tok, id.user, id.user, strings.Join(id.groups, ","))
		if err := os.WriteFile(filepath.Join(l.Dir, id.file+".kubeconfig"), []byte(kubeconfig(l.APIServer(), id.user, tok)), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(l.pkiDir(), "tokens.csv"), []byte(tokens.String()), 0o600)
}

type identity struct {
	file, user string
	groups     []string
}

// identities are the lab's users. Each component gets the identity its
// default RBAC binding expects; Pharos's controller gets only its
// ClusterRole from config/rbac.
func (l *Lab) identities() []identity {
	return []identity{
		{"admin", "lab-admin", []string{"system:masters"}},
		{"kube-controller-manager", "system:kube-controller-manager", nil},
		{"kube-scheduler", "system:kube-scheduler", nil},
		{"kube-proxy", "system:kube-proxy", nil},
		// The node agent stands in for the kubelet, which RBAC alone (no
		// Node authorizer here) cannot scope to one node.
		{"node-agent", "lab-node-agent", []string{"system:masters"}},
		{"pharos-controller", "pharos-controller", []string{"pharos:controllers"}},
		{"pharos-speaker", "pharos-speaker", []string{"pharos:speakers"}},
	}
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func kubeconfig(server, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: lab
  context: {cluster: lab, user: %q}
current-context: lab
`, server, user, token, user)
}

func (l *Lab) bin(name string) string { return filepath.Join(l.KubeBinDir, name) }

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler in the control-plane namespace.
func (l *Lab) startControlPlane(ctx context.Context) error {
	cp := l.Control.Name
	pki := l.pkiDir()
	servingCert, servingKey := l.servingCert()
	if err := l.Start(Process{Name: "etcd", Netns: cp, Argv: []string{l.bin("etcd"),
		"--data-dir", filepath.Join(l.Dir, "etcd"),
		"--listen-client-urls", etcdClient, "--advertise-client-urls", etcdClient,
		"--listen-peer-urls", etcdPeerURL, "--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", "default=" + etcdPeerURL,
	}}); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "kube-apiserver", Netns: cp, Argv: []string{l.bin("kube-apiserver"),
		"--etcd-servers", etcdClient,
		"--bind-address", l.Control.V4.String(), "--advertise-address", l.Control.V4.String(),
		"--secure-port", fmt.Sprint(APIPort), "--cert-dir", pki,
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey,
		// Webhooks and aggregated APIs are called at their endpoints'
		// pod addresses: the control plane's namespace has routes to the
		// pod CIDRs but no kube-proxy for ClusterIPs.
		"--enable-aggregator-routing=true",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(pki, "sa.key"),
		"--token-auth-file", filepath.Join(pki, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", ServiceV4.String() + "," + ServiceV6.String(),
		"--service-node-port-range", "30000-32767",
		"--allow-privileged=true",
	}}); err != nil {
		return err
	}
	if err := l.waitAPIServer(ctx, 90*time.Second); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "kube-controller-manager", Netns: cp, Argv: []string{l.bin("kube-controller-manager"),
		"--kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(l.Dir, "kube-controller-manager.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1",
		"--service-account-private-key-file", filepath.Join(pki, "sa.key"),
		"--root-ca-file", l.CAFile(),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range", ServiceV4.String() + "," + ServiceV6.String(),
		"--allocate-node-cidrs=false",
		// Pod CIDRs come from the node agents; there is no storage.
		"--controllers", "*,-node-ipam-controller,-certificatesigningrequest-signing-controller,-certificatesigningrequest-approving-controller,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller",
	}}); err != nil {
		return err
	}
	return l.Start(Process{Name: "kube-scheduler", Netns: cp, Argv: []string{l.bin("kube-scheduler"),
		"--kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(l.Dir, "kube-scheduler.kubeconfig"),
		"--leader-elect=false", "--bind-address", "127.0.0.1",
	}})
}

// waitAPIServer polls /readyz from inside the LAN until it answers ok.
func (l *Lab) waitAPIServer(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if !l.Running("kube-apiserver") {
			return fmt.Errorf("kube-apiserver exited; see %s", filepath.Join(l.LogDir(), "kube-apiserver.log"))
		}
		out, err := l.Kubectl(ctx, "get", "--raw", "/readyz")
		if err == nil && strings.TrimSpace(out) == "ok" {
			return nil
		}
		last = strings.TrimSpace(out)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready after %s: %s", timeout, last)
}

// Kubectl runs the lab's kubectl as admin from inside the client
// namespace (the root namespace cannot reach the LAN).
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	return l.Exec(ctx, l.Client.Name, append([]string{l.bin("kubectl"), "--kubeconfig", l.Kubeconfig()}, args...)...)
}

// announcedFrom finds the node in a pharos.io/Announced message
// ("198.18.100.0 from node plab-n1 on eth0 (ARP); ...").
var announcedFrom = regexp.MustCompile(`(\S+) from node (\S+) on`)

// AnnouncingNode returns the node that the Announced condition of Service
// default/svc names for ip.
func (l *Lab) AnnouncingNode(ctx context.Context, svc, ip string) (string, error) {
	msg, err := l.Kubectl(ctx, "get", "svc", svc, "-o", `jsonpath={.status.conditions[?(@.type=="pharos.io/Announced")].message}`)
	if err != nil {
		return "", err
	}
	for _, m := range announcedFrom.FindAllStringSubmatch(msg, -1) {
		if m[1] == ip {
			return m[2], nil
		}
	}
	return "", fmt.Errorf("Service %s: %s is not announced: %q", svc, ip, msg)
}

// Exec runs a command in one of the lab's namespaces.
func (l *Lab) Exec(ctx context.Context, ns string, argv ...string) (string, error) {
	var out strings.Builder
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// startNodes starts each node's agent and kube-proxy.
func (l *Lab) startNodes(context.Context) error {
	for _, n := range l.Nodes {
		argv := []string{
			l.LabBinary, "agent",
			"--kubeconfig", filepath.Join(l.Dir, "node-agent.kubeconfig"),
			"--node", n.Name,
			"--node-ips", n.V4.String() + "," + n.V6.String(),
			"--pod-cidrs", n.PodV4.String() + "," + n.PodV6.String(),
			"--bridge", "cbr0",
			"--pod-netns-prefix", n.Name + "-p",
			"--log-dir", l.LogDir(),
		}
		if bins := l.pharosBinaries(); bins != "" {
			argv = append(argv,
				"--pharos-image", PharosImage,
				"--pharos-binaries", bins,
				"--pharos-user", fmt.Sprintf("%d:%d", PharosImageUser, PharosImageUser),
				"--apiserver", l.APIServer(),
				"--apiserver-ca", l.CAFile(),
				"--state-dir", filepath.Join(l.PodStateDir(), n.Name),
			)
		}
		if err := l.Start(Process{Name: n.Name + "-agent", Netns: n.Name, MountRoot: true, Argv: argv}); err != nil {
			return err
		}
		cfg := filepath.Join(l.Dir, n.Name+"-proxy.yaml")
		if err := os.WriteFile(cfg, []byte(l.kubeProxyConfig(n)), 0o644); err != nil {
			return err
		}
		if err := l.Start(Process{Name: n.Name + "-proxy", Netns: n.Name, Argv: []string{l.bin("kube-proxy"), "--config", cfg}}); err != nil {
			return err
		}
	}
	return nil
}

// pharosBinaries is the agents' --pharos-binaries: which binary stands in
// for each path of Pharos's image; empty if the lab has none.
func (l *Lab) pharosBinaries() string {
	var kv []string
	if l.ControllerBinary != "" {
		kv = append(kv, "/controller="+l.ControllerBinary)
	}
	if l.SpeakerBinary != "" {
		kv = append(kv, "/speaker="+l.SpeakerBinary)
	}
	return strings.Join(kv, ",")
}

func (l *Lab) kubeProxyConfig(n Node) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %s
clientConnection:
  kubeconfig: %s
clusterCIDR: %s,%s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, n.Name, filepath.Join(l.Dir, "kube-proxy.kubeconfig"), ClusterV4, ClusterV6)
}

// installPharos installs the CRDs and RBAC from config/ and starts the
// controller and speakers under their own identities, bound only to their
// ClusterRoles and Roles.
func (l *Lab) installPharos(ctx context.Context) error {
	if l.ControllerBinary == "" || l.Pharos == PharosNone {
		return nil
	}
	// The namespace first: config/rbac has Roles in it.
	if err := l.apply(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: pharos-system}\n"); err != nil {
		return err
	}
	for _, dir := range []string{"config/crd/bases", "config/rbac", "config/rbac/speaker"} {
		if _, err := l.Kubectl(ctx, "apply", "-f", filepath.Join(l.RepoRoot, dir)); err != nil {
			return err
		}
	}
	// Each identity gets its ClusterRole, and the Roles that config/rbac
	// has for it. The memberlist key Secret is the controller's to create.
	var manifest strings.Builder
	for _, b := range []struct{ identity, kind, namespace string }{
		{"pharos-controller", "ClusterRole", ""},
		{"pharos-speaker", "ClusterRole", ""},
		{"pharos-controller", "Role", "pharos-system"},
		{"pharos-controller", "Role", "kube-system"},
		{"pharos-speaker", "Role", "pharos-system"},
	} {
		ns := ""
		if b.namespace != "" {
			ns = ", namespace: " + b.namespace
		}
		fmt.Fprintf(&manifest, `---
apiVersion: rbac.authorization.k8s.io/v1
kind: %sBinding
metadata: {name: %s%s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: %s, name: %s}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}
`, b.kind, b.identity, ns, b.kind, b.identity, b.identity)
	}
	if err := l.apply(ctx, manifest.String()); err != nil {
		return err
	}
	if _, err := l.Kubectl(ctx, "wait", "--for=condition=Established", "crd/ipaddresspools.pharos.io", "--timeout=30s"); err != nil {
		return err
	}
	if err := l.Start(Process{Name: "pharos-controller", Netns: l.Control.Name, Argv: []string{l.ControllerBinary,
		"--kubeconfig", filepath.Join(l.Dir, "pharos-controller.kubeconfig"),
		"--leader-election-namespace", "pharos-system",
		"--metrics-bind-address", "127.0.0.1:7472", "--health-probe-bind-address", "127.0.0.1:7473",
	}}); err != nil {
		return err
	}
	if l.SpeakerBinary == "" {
		return nil
	}
	for _, n := range l.Nodes {
		if err := l.Start(Process{Name: n.Name + "-speaker", Netns: n.Name, Argv: []string{l.SpeakerBinary,
			"--node-name", n.Name,
			"--kubeconfig", filepath.Join(l.Dir, "pharos-speaker.kubeconfig"),
			"--bind-addr", n.V4.String(),
			"--memberlist-secret", "pharos-system/pharos-memberlist",
			"--metrics-bind-address", "127.0.0.1:7474",
		}}); err != nil {
			return err
		}
	}
	return nil
}

// Apply applies a manifest as admin.
func (l *Lab) Apply(ctx context.Context, manifest string) error { return l.apply(ctx, manifest) }

func (l *Lab) apply(ctx context.Context, manifest string) error {
	f, err := os.CreateTemp(l.Dir, "manifest-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(manifest); err != nil {
		return err
	}
	_ = f.Close()
	_, err = l.Kubectl(ctx, "apply", "-f", f.Name())
	return err
}

// checkRunning fails if a component has exited.
func (l *Lab) checkRunning() error {
	names := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	pharos := l.Pharos != PharosNone
	if pharos && l.ControllerBinary != "" {
		names = append(names, "pharos-controller")
	}
	if pharos && l.ControllerBinary != "" && l.SpeakerBinary != "" {
		for _, n := range l.Nodes {
			names = append(names, n.Name+"-speaker")
		}
	}
	for _, n := range l.Nodes {
		names = append(names, n.Name+"-agent", n.Name+"-proxy")
	}
	for _, name := range names {
		if !l.Running(name) {
			return fmt.Errorf("%s exited; see %s", name, filepath.Join(l.LogDir(), name+".log"))
		}
	}
	return nil
}

// waitReady waits until every node is Ready and every component runs.
func (l *Lab) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(120 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		out, err := l.Kubectl(ctx, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		ready := 0
		if err == nil {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasSuffix(line, "=True") {
					ready++
				}
			}
		}
		if ready == len(l.Nodes) {
			// Components that fail on their flags exit within a second.
			time.Sleep(time.Second)
			return l.checkRunning()
		}
		last = strings.TrimSpace(out)
		if err := l.checkRunning(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("nodes not Ready after 120s: %q", last)
}

// HTTPGet fetches a URL from inside a namespace with a short timeout, as a
// client on that host would.
func (l *Lab) HTTPGet(ctx context.Context, ns, url string) (string, error) {
	return l.Exec(ctx, ns, "curl", "-sS", "--max-time", "3", "-g", url)
}

// ProbeRun is a client loop running in one of the lab's namespaces.
type ProbeRun struct {
	cmd *exec.Cmd
	out *strings.Builder
}

// StartProbe starts the lab's client loop (a new TCP connection to url
// every interval) in namespace ns.
func (l *Lab) StartProbe(ns, url string, interval time.Duration) (*ProbeRun, error) {
	out := &strings.Builder{}
	cmd := exec.Command("ip", "netns", "exec", ns, l.LabBinary, "probe", "--url", url, "--interval", interval.String())
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &ProbeRun{cmd: cmd, out: out}, nil
}

// Stop ends the loop and returns its output, for probe.Parse.
func (p *ProbeRun) Stop() string {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	return p.out.String()
}

// Prepare builds the lab command and Pharos's binaries into outDir/bin and
// the pinned Kubernetes binaries (cached), and returns Options that use
// them; env is added to the builds' environment (nil for none).
func Prepare(repoRoot, outDir string, env []string) (Options, error) {
	bins := filepath.Join(outDir, "bin")
	for pkg, name := range map[string]string{"./test/lab": "lab", "./controller": "controller", "./speaker": "speaker"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bins, name), pkg)
		cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return Options{}, fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	ensure := exec.Command(filepath.Join(repoRoot, "hack", "kube-bins", "ensure.sh"))
	ensure.Env, ensure.Stderr = append(os.Environ(), env...), os.Stderr
	kube, err := ensure.Output()
	if err != nil {
		return Options{}, fmt.Errorf("hack/kube-bins/ensure.sh: %w", err)
	}
	return Options{
		KubeBinDir:       strings.TrimSpace(string(kube)),
		LabBinary:        filepath.Join(bins, "lab"),
		ControllerBinary: filepath.Join(bins, "controller"),
		SpeakerBinary:    filepath.Join(bins, "speaker"),
		RepoRoot:         repoRoot,
		Out:              os.Stderr,
	}, nil
}
