package migrate

import (
	"strings"
	"testing"
)

// convertYAML reads in as the file "in.yaml" and converts it, returning the
// output YAML and every problem as "severity: line".
func convertYAML(t *testing.T, in string, opts Options) (string, []string) {
	t.Helper()
	sources, problems := Read("in.yaml", []byte(in))
	res := Convert(sources, opts)
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range append(problems, res.Problems...) {
		lines = append(lines, p.Severity.String()+": "+p.String())
	}
	return string(out), lines
}

// TestConvert is the conversion's specification: each case is MetalLB
// input, the Pharos output it becomes, and the problems reported.
func TestConvert(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		in       string
		want     string
		problems []string
	}{{
		name: "a pool keeps its labels and annotations, loses its namespace and kubectl's record, and its host bits are masked as MetalLB did",
		in: `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: p
  namespace: metallb-system
  labels: {tier: public}
  annotations:
    owner: netops
    kubectl.kubernetes.io/last-applied-configuration: "{}"
  uid: 0b7d2a4e-0000-0000-0000-000000000000
  resourceVersion: "42"
spec:
  addresses: [198.18.0.10/24, "2001:db8::/64"]
  autoAssign: false
status:
  assignedIPv4: 3
`,
		want: `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata:
  annotations:
    owner: netops
  labels:
    tier: public
  name: p
spec:
  addresses:
  - 198.18.0.0/24
  - 2001:db8::/64
  autoAssign: false
`,
		problems: []string{
			`warning: in.yaml:2: IPAddressPool metallb-system/p: spec.addresses[0]: "198.18.0.10/24" has host bits set; MetalLB used the network 198.18.0.0/24, written as such`,
		},
	}, {
		name: "an empty selector matches everything, so it becomes no selector; one that matches every namespace voids the namespace list",
		in: `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p}
spec:
  addresses: [198.18.0.0/24]
  serviceAllocation:
    namespaces: [a]
    namespaceSelectors: [{}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPools: [p]
  ipAddressPoolSelectors: [{matchLabels: {a: b}}, {}]
  nodeSelectors: [{}]
`,
		want: `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata:
  name: p
spec:
  addresses:
  - 198.18.0.0/24
  serviceAllocation: {}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
`,
		problems: []string{
			"warning: in.yaml:2: IPAddressPool p: spec.serviceAllocation.namespaceSelectors[0]: an empty selector matches everything, so the whole list does; written as no spec.serviceAllocation.namespaceSelectors, which means the same in Pharos",
			"warning: in.yaml:11: L2Advertisement l2: spec.ipAddressPoolSelectors[1]: an empty selector matches everything, so the whole list does; written as no spec.ipAddressPoolSelectors, which means the same in Pharos",
			"warning: in.yaml:11: L2Advertisement l2: spec.nodeSelectors[0]: an empty selector matches everything, so the whole list does; written as no spec.nodeSelectors, which means the same in Pharos",
		},
	}, {
		name: "localPref 0 is MetalLB's unset",
		in: `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: a}
spec: {localPref: 0, communities: ["large:64512:1:2"]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b}
spec: {localPref: 150, peers: [r1]}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: a
spec:
  communities:
  - large:64512:1:2
---
apiVersion: pharos.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: b
spec:
  localPref: 150
  peers:
  - r1
`,
	}, {
		name: "MetalLB carries one family per session unless dualStackAddressFamily: Pharos says so with disableMP",
		in: `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: dual}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, dualStackAddressFamily: true, disableMP: true}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: dyn}
spec: {myASN: 64512, dynamicASN: external, peerAddress: "2001:db8::1", disableMP: true}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: dual
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.18.0.1
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: dyn
spec:
  disableMP: true
  dynamicASN: external
  myASN: 64512
  peerAddress: 2001:db8::1
`,
		problems: []string{
			"warning: in.yaml:2: BGPPeer dual: spec.disableMP: MetalLB ignores disableMP next to dualStackAddressFamily (both families are carried); removed",
		},
	}, {
		name: "ebgpMultiHop is dropped on iBGP, where it did nothing; BFD on a multi-hop eBGP session is an error",
		in: `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: ibgp}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.18.0.1, ebgpMultiHop: true}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: ebgp}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.2, ebgpMultiHop: true, bfdProfile: fast, dualStackAddressFamily: true}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: ebgp
spec:
  bfdProfile: fast
  ebgpMultiHop: true
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.18.0.2
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: ibgp
spec:
  disableMP: true
  myASN: 64512
  peerASN: 64512
  peerAddress: 198.18.0.1
`,
		problems: []string{
			"warning: in.yaml:2: BGPPeer ibgp: spec.ebgpMultiHop: applies to eBGP only and this peer is iBGP (peerASN = myASN), where it had no effect; removed",
			"error: in.yaml:7: BGPPeer ebgp: spec.bfdProfile: BFD on a multi-hop session: Pharos's BFD is single-hop (RFC 5881), so a router more than one hop away gets no BFD and the session relies on its hold time; peer with a directly connected router to keep BFD",
		},
	}, {
		name: "a password Secret moves to Pharos's namespace, given by Options",
		opts: Options{Namespace: "lb"},
		in: `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r, namespace: metallb}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, passwordSecret: {name: md5, namespace: other}, dualStackAddressFamily: true}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: r
spec:
  myASN: 64512
  passwordSecret:
    name: md5
    namespace: lb
  peerASN: 64513
  peerAddress: 198.18.0.1
`,
		problems: []string{
			`warning: in.yaml:2: BGPPeer metallb/r: spec.passwordSecret: Pharos's speakers read BGP password Secrets in their own namespace only: copy Secret other/md5 (type kubernetes.io/basic-auth, key password) to namespace lb and list "md5" in the chart value speaker.bgpPasswordSecrets, or the session will not authenticate`,
		},
	}, {
		name: "a v1beta1 peer's explicit 0s hold time (no keepalives) is kept; its selectors become label selectors",
		in: `
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: r}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.18.0.1
  holdTime: 0s
  nodeSelectors:
  - matchExpressions: [{key: rack, operator: In, values: [a]}]
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: r
spec:
  disableMP: true
  holdTime: 0s
  myASN: 64512
  nodeSelectors:
  - matchExpressions:
    - key: rack
      operator: In
      values:
      - a
  peerASN: 64513
  peerAddress: 198.18.0.1
`,
	}, {
		name: "Service annotations: metallb.io wins over metallb.universe.tf as in MetalLB, a differing pharos.io is kept and reported, MetalLB's allocation record goes",
		in: `
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    metallb.io/address-pool: gold
    metallb.universe.tf/address-pool: silver
    metallb.universe.tf/allow-shared-ip: k
    pharos.io/allow-shared-ip: other
    metallb.io/ip-allocated-from-pool: gold
    metallb.io/address-pools: typo
spec:
  type: LoadBalancer
  loadBalancerClass: metallb
  ports: [{port: 80}]
status:
  loadBalancer:
    ingress: [{ip: 198.18.0.1}]
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 80}]}
`,
		want: `apiVersion: v1
kind: Service
metadata:
  annotations:
    metallb.io/address-pools: typo
    pharos.io/address-pool: gold
    pharos.io/allow-shared-ip: other
  name: web
  namespace: shop
spec:
  loadBalancerClass: metallb
  ports:
  - port: 80
  type: LoadBalancer
`,
		problems: []string{
			`warning: in.yaml:2: Service shop/web: metadata.annotations[metallb.universe.tf/address-pool]: MetalLB used metallb.io/address-pool ("gold") and ignored this one ("silver"); removed`,
			`warning: in.yaml:2: Service shop/web: metadata.annotations[metallb.io/address-pools]: not an annotation MetalLB reads (a typo?), so it had no effect; left as is`,
			`error: in.yaml:2: Service shop/web: metadata.annotations[metallb.universe.tf/allow-shared-ip]: pharos.io/allow-shared-ip is already set to "other", which Pharos reads instead of MetalLB's "k": keep one value in pharos.io/allow-shared-ip (the MetalLB annotation is removed)`,
			`warning: in.yaml:2: Service shop/web: spec.loadBalancerClass: Pharos handles this Service only if its controller runs with --lb-class=metallb (the chart value loadBalancerClass)`,
		},
	}, {
		name: "objects of one name in two namespaces would be one Pharos object",
		in: `
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c, namespace: a}
spec: {communities: [{name: vpn, value: "1:1"}]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c, namespace: b}
spec: {communities: [{name: lan, value: "1:2"}]}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: Community
metadata:
  name: c
spec:
  communities:
  - name: vpn
    value: "1:1"
`,
		problems: []string{
			`error: in.yaml:7: Community b/c: a Community named "c" was also read from in.yaml:2 (namespace a); Pharos's Community is cluster-scoped, so the names of MetalLB's objects (in any namespace) must be unique: rename one (this one is left out)`,
		},
	}, {
		name: "what Pharos rejects is left out: overlapping pools, an unknown alias, an aggregation wider than the pool",
		in: `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [198.18.0.0/25]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [198.18.0.100-198.18.0.200]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: alias}
spec: {communities: [no-export]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: wide}
spec: {ipAddressPools: [a], aggregationLength: 24}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata:
  name: a
spec:
  addresses:
  - 198.18.0.0/25
`,
		problems: []string{
			`error: in.yaml:7: IPAddressPool b: spec.addresses[0]: Pharos rejects the converted object: Invalid value: "198.18.0.100-198.18.0.200": overlaps 198.18.0.0-198.18.0.127 of IPAddressPool "a"; an address may belong to one pool only: remove the overlap from one of the two pools; fix it in the MetalLB object and convert again. Left out`,
			`error: in.yaml:12: BGPAdvertisement alias: spec.communities[0]: Pharos rejects the converted object: Invalid value: "no-export": no Community alias "no-export" exists; define it in a Community object or write the value (65000:100, large:64512:1:2); fix it in the MetalLB object and convert again. Left out`,
			`error: in.yaml:17: BGPAdvertisement wide: spec.aggregationLength: Pharos rejects the converted object: Invalid value: 24: pool a's range 198.18.0.0-198.18.0.127 is not made of whole /24 prefixes: advertising them would cover addresses outside the pool; use a longer length; fix it in the MetalLB object and convert again. Left out`,
		},
	}, {
		name: "references to objects the input lacks are warnings, when the input has objects of that kind",
		in: `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: slow}
spec: {detectMultiplier: 5, passiveMode: false, minimumTtl: 254}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, bfdProfile: fast, dualStackAddressFamily: true}
`,
		want: `apiVersion: pharos.io/v1beta1
kind: BFDProfile
metadata:
  name: slow
spec:
  detectMultiplier: 5
  minimumTtl: 254
  passiveMode: false
---
apiVersion: pharos.io/v1beta1
kind: BGPPeer
metadata:
  name: r
spec:
  bfdProfile: fast
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.18.0.1
`,
		problems: []string{
			`warning: in.yaml:7: BGPPeer r: spec.bfdProfile: BFDProfile "fast" is not among the converted objects; the session runs without BFD until it exists`,
		},
	}, {
		name: "status objects and other kinds are skipped with a warning",
		in: `
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: l2-abc, namespace: metallb-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: metallb-system}
`,
		problems: []string{
			"warning: in.yaml:2: ServiceL2Status metallb-system/l2-abc: status that MetalLB writes, not configuration; skipped",
			"warning: in.yaml:6: Deployment metallb-system/controller: not MetalLB configuration (apps/v1 Deployment); skipped",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := convertYAML(t, tc.in, tc.opts)
			if got != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tc.want)
			}
			if strings.Join(problems, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(tc.problems, "\n"))
			}
		})
	}
}

// TestConvertNeverPanicsOnEmptyInput covers the degenerate inputs.
func TestConvertEmpty(t *testing.T) {
	res := Convert(nil, Options{})
	out, err := res.YAML()
	if err != nil || len(out) != 0 || res.HasErrors() {
		t.Fatalf("empty conversion: %q, %v, %v", out, err, res.Problems)
	}
	res = Convert([]Source{{Kind: "IPAddressPool"}}, Options{}) // no decoded object
	if len(res.IPAddressPools) != 0 {
		t.Fatal("a Source without an object converted to something")
	}
}
