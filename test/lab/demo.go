package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pharos-lb/pharos/test/lab/cluster"
)

func demo(ctx context.Context, l *cluster.Lab) error {
	start := time.Now()
	if err := l.Up(ctx); err != nil {
		return err
	}
	if err := l.Apply(ctx, cluster.DemoManifest); err != nil {
		return err
	}
	ip, err := waitExternalIP(ctx, l, "default", "my-nginx", 60*time.Second)
	if err != nil {
		return err
	}
	if _, err := l.Kubectl(ctx, "rollout", "status", "deployment/my-nginx", "--timeout=60s"); err != nil {
		return err
	}
	out, _ := l.Kubectl(ctx, "get", "svc", "my-nginx")
	fmt.Printf("\n$ kubectl get svc my-nginx\n%s", out)
	fmt.Printf("\nEXTERNAL-IP %s assigned by Pharos %.1fs after the start.\n", ip, time.Since(start).Seconds())
	n := l.Client.Name
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if body, err = l.HTTPGet(ctx, n, "http://"+ip+"/"); err == nil {
			break
		}
	}
	fmt.Printf("\n$ ip netns exec %s curl http://%s/   # a LAN client: ARP, then kube-proxy on the announcing node\n%s", n, ip, body)
	if err != nil {
		return fmt.Errorf("the demo Service does not answer: %w", err)
	}
	fmt.Printf("answered %.1fs after the start.\n", time.Since(start).Seconds())
	fmt.Printf(`
Which node announces it, and why:
  go run ./test/lab kubectl get svc my-nginx -o jsonpath='{.status.conditions}'

Use kubectl against the lab:
  go run ./test/lab kubectl get svc,pods -o wide
  ip netns exec %s %s --kubeconfig %s get svc
Tear it down:
  make lab-down
`, l.Client.Name, l.KubeBinDir+"/kubectl", l.Kubeconfig())
	return nil
}

func waitExternalIP(ctx context.Context, l *cluster.Lab, ns, name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := l.Kubectl(ctx, "-n", ns, "get", "svc", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if ip := strings.TrimSpace(out); err == nil && ip != "" {
			return ip, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	out, _ := l.Kubectl(ctx, "-n", ns, "get", "svc", name, "-o", "jsonpath={.status.conditions}")
	return "", fmt.Errorf("no EXTERNAL-IP for Service %s/%s after %s; its conditions: %s", ns, name, timeout, out)
}
