package cluster

import "fmt"

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
