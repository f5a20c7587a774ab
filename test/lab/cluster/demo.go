package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DemoManifest is the tutorial: a pool on the lab's LAN and its
// L2Advertisement, then DemoApp.
var DemoManifest = fmt.Sprintf(`apiVersion: pharos.io/v1beta1
kind: IPAddressPool
metadata: {name: demo}
spec:
  addresses: [%q, %q]
---
apiVersion: pharos.io/v1beta1
kind: L2Advertisement
metadata: {name: demo}
---
`, DemoPoolV4, DemoPoolV6) + DemoApp

// DemoApp is a Deployment my-nginx with 2 replicas and a dual-stack
// LoadBalancer Service my-nginx on port 80, in namespace default.
const DemoApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: my-nginx, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {run: my-nginx}}
  template:
    metadata: {labels: {run: my-nginx}}
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: my-nginx, namespace: default, labels: {run: my-nginx}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  selector: {run: my-nginx}
  ports: [{port: 80, protocol: TCP}]
`

// WaitDemoAnswers waits until the Service my-nginx of DemoApp has an
// address of each family and each answers HTTP from the LAN client, and
// returns them in status order.
func (l *Lab) WaitDemoAnswers(ctx context.Context, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		out, err := l.Kubectl(ctx, "get", "svc", "my-nginx", "-o", `jsonpath={range .status.loadBalancer.ingress[*]}{.ip}{" "}{end}`)
		ips := strings.Fields(out)
		switch {
		case err != nil:
			last = err.Error()
		case len(ips) != 2:
			last = fmt.Sprintf("addresses %v, want one per family", ips)
		default:
			answered := 0
			for _, ip := range ips {
				u := "http://" + ip + "/"
				if strings.Contains(ip, ":") {
					u = "http://[" + ip + "]/"
				}
				if body, err := l.HTTPGet(ctx, l.Client.Name, u); err != nil || !strings.Contains(body, "pod=my-nginx") {
					last = fmt.Sprint(u, ": ", body, err)
					break
				}
				answered++
			}
			if answered == len(ips) {
				return ips, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("my-nginx did not answer within %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
