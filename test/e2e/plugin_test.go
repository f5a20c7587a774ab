//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

// pluginCases: a pool of one address, held by one Service (queued, added
// once it holds the address, asks for it too: exhausted); one that asks for a pool that
// does not exist (pending, no pool); and a Local Service with no endpoint.
const pluginCases = `apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny}
spec: {addresses: ["198.18.110.1/32"], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: tiny}
spec: {ipAddressPools: [tiny]}
---
apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: plugin}
spec: {addresses: ["198.18.111.0/28"], autoAssign: false}
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: plugin}
spec: {ipAddressPools: [plugin]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: holder, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {run: holder}}
  template:
    metadata: {labels: {run: holder}}
    spec:
      containers: [{name: holder, image: echo, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: holder, namespace: default, annotations: {pharos.io/address-pool: tiny}}
spec: {type: LoadBalancer, selector: {run: holder}, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: nopool, namespace: default, annotations: {pharos.io/address-pool: gold}}
spec: {type: LoadBalancer, selector: {run: holder}, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: lonely, namespace: default, annotations: {pharos.io/address-pool: plugin}}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {run: nobody}, ports: [{port: 80, protocol: TCP}]}
`

// TestKubectlPharos runs the plugin through kubectl's plugin lookup
// against the lab's real cluster state: each explain names the cause and
// the fix, status shows the pools and who announces, simulate-drain names
// the node an address would move to, and validate refuses a manifest with
// the very message the webhook gives through the apiserver.
func TestKubectlPharos(t *testing.T) {
	ctx := context.Background()
	if err := lab.Apply(ctx, pluginCases); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, obj := range []string{"svc/holder", "svc/queued", "svc/nopool", "svc/lonely", "deploy/holder", "ipaddresspool/tiny", "ipaddresspool/plugin", "l2advertisement/tiny", "l2advertisement/plugin"} {
			_, _ = lab.Kubectl(ctx, "delete", "--ignore-not-found", obj)
		}
	}()
	ip := loadBalancerIPs(t, "holder")[0]
	if err := lab.Apply(ctx, `apiVersion: v1
kind: Service
metadata: {name: queued, namespace: default, annotations: {pharos.io/address-pool: tiny}}
spec: {type: LoadBalancer, selector: {run: holder}, ports: [{port: 80, protocol: TCP}]}
`); err != nil {
		t.Fatal(err)
	}
	var owner string
	cluster.Eventually(t, 30*time.Second, func() (err error) { owner, err = announcer(t, "holder", ip); return err })
	loadBalancerIPs(t, "lonely")

	explain := func(svc string, want ...string) {
		t.Helper()
		cluster.Eventually(t, 30*time.Second, func() error {
			out, err := lab.KubectlPlugin(ctx, "explain", "svc/"+svc)
			if err != nil {
				return err
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					return fmt.Errorf("kubectl pharos explain svc/%s lacks %q:\n%s", svc, w, out)
				}
			}
			return nil
		})
	}
	t.Run("healthy", func(t *testing.T) {
		explain("holder", "Service default/holder: served: "+ip+" from node "+owner, owner+": announces it on eth0", "candidate, standby")
	})
	t.Run("exhausted pool", func(t *testing.T) {
		explain("queued", "pending: PoolExhausted", "tiny: exhausted: no IPv4 address free", "fix: add addresses to spec.addresses")
	})
	t.Run("no pool", func(t *testing.T) {
		explain("nopool", "pending: NoMatchingPool", "asks for pool gold (pharos.io/address-pool), which does not exist")
	})
	t.Run("Local Service without endpoints", func(t *testing.T) {
		explain("lonely", "assigned but not served: no ready endpoint", "readiness probes")
	})
	t.Run("node excluded by label", func(t *testing.T) {
		other := lab.Nodes[0].Name
		if other == owner {
			other = lab.Nodes[1].Name
		}
		lab.MustKubectl(t, "label", "node", other, "node.kubernetes.io/exclude-from-external-load-balancers=true")
		defer lab.MustKubectl(t, "label", "node", other, "node.kubernetes.io/exclude-from-external-load-balancers-")
		explain("holder", other+": not a candidate: labelled node.kubernetes.io/exclude-from-external-load-balancers",
			"fix: kubectl label node "+other+" node.kubernetes.io/exclude-from-external-load-balancers- to let it announce")
	})

	t.Run("status", func(t *testing.T) {
		out, err := lab.KubectlPlugin(ctx, "status")
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []string{
			`tiny\s+IPv4\s+\[#{20}\]\s+1\s+0\s+yes`,
			`default/holder\s+` + regexp.QuoteMeta(ip) + `\s+tiny\s+layer2\s+` + owner + `\s+Announced`,
			`default/queued\s+-\s+-\s+-\s+-\s+PoolExhausted`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("kubectl pharos status does not match %s:\n%s", re, out)
			}
		}
		js, err := lab.KubectlPlugin(ctx, "status", "-o", "json")
		if err != nil || !strings.Contains(js, `"health": "Announced"`) {
			t.Errorf("status -o json: %v\n%s", err, js)
		}
	})

	t.Run("simulate-drain", func(t *testing.T) {
		out, err := lab.KubectlPlugin(ctx, "simulate-drain", owner)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(regexp.QuoteMeta(ip) + `\s+default/holder\s+layer2\s+` + owner + `\s+(\S+)`).FindStringSubmatch(out)
		if m == nil || m[1] == owner || m[1] == "NOBODY" {
			t.Errorf("simulate-drain %s does not move %s to another node:\n%s", owner, ip, out)
		}
	})

	// MetalLB's documented layer-2 example (test/testdata/metallb), its
	// range moved onto the lab's LAN, and a Service with MetalLB's
	// annotations: converted by the plugin, applied to the apiserver,
	// and served: the Service gets the requested address and answers.
	t.Run("migrate-metallb", func(t *testing.T) {
		doc, err := os.ReadFile(filepath.Join(repoRoot(), "test", "testdata", "metallb", "l2-simple.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		in := strings.ReplaceAll(string(doc), "198.18.1.", "198.18.113.") + `---
apiVersion: v1
kind: Service
metadata:
  name: migrated
  namespace: default
  annotations:
    metallb.universe.tf/address-pool: first-pool
    metallb.universe.tf/loadBalancerIPs: 198.18.113.245
spec: {type: LoadBalancer, selector: {run: holder}, ports: [{port: 80, protocol: TCP}]}
`
		src := filepath.Join(lab.Dir, "metallb.yaml")
		if err := os.WriteFile(src, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		converted, err := lab.KubectlPlugin(ctx, "migrate-metallb", "-f", src)
		if err != nil {
			t.Fatalf("migrate-metallb: %v\n%s", err, converted)
		}
		if strings.Contains(converted, "metallb") {
			t.Errorf("the converted manifests still name MetalLB:\n%s", converted)
		}
		defer func() {
			for _, obj := range []string{"svc/migrated", "ipaddresspool/first-pool", "l2advertisement/example"} {
				_, _ = lab.Kubectl(ctx, "delete", "--ignore-not-found", obj)
			}
		}()
		if err := lab.Apply(ctx, converted); err != nil {
			t.Fatalf("applying the converted manifests: %v\n%s", err, converted)
		}
		if got := loadBalancerIPs(t, "migrated"); len(got) != 1 || got[0] != "198.18.113.245" {
			t.Fatalf("the migrated Service has %v, want the address its MetalLB annotation asked for", got)
		}
		expectBody(t, lab.Client.Name, "http://198.18.113.245/", "pod=holder-")
	})

	// validate's agreement with the webhook, message for message, is
	// tested through the real apiserver in controller/webhook (this lab
	// runs the controller without its webhook); here, the plugin's exit
	// status and the line naming file, object and field.
	t.Run("validate", func(t *testing.T) {
		bad := filepath.Join(lab.Dir, "plugin-bad.yaml")
		if err := os.WriteFile(bad, []byte(`apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: bad}
spec:
  addresses: ["198.18.112.0/28"]
  serviceAllocation:
    namespaceSelectors: [{matchExpressions: [{key: team, operator: Near}]}]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := lab.KubectlPlugin(ctx, "validate", "-f", bad)
		if err == nil {
			t.Fatalf("validate of an invalid pool exits 0:\n%s", out)
		}
		if !strings.Contains(out, bad+`: IPAddressPool bad: IPAddressPool.pharos.io "bad" is invalid: spec.serviceAllocation.namespaceSelectors[0]`) {
			t.Errorf("validate's answer does not name the file, object and field:\n%s", out)
		}
	})
}
