// Command controller measures the Pharos controller against a real
// kube-apiserver and etcd, and prints Go-benchmark-style lines whose custom
// units are the figures merged into _output/bench/summary.json:
//
//   - apiserver_status_ceiling_5000_s: a bare client with 8 workers and no
//     client-side rate limit writes the status of 5,000 Services, until a
//     watcher has seen them all; the fastest the apiserver here allows.
//   - assign_backlog_5000_s: 5,000 LoadBalancer Services exist without an
//     address; the time from the controller's start until all have one.
//   - assign_backlog_ratio_to_ceiling: the two above divided.
//   - restart_resync_5000_s: after a restart with 5,000 assigned Services,
//     the time from the controller's start until a new Service has an IP.
//   - restart_ip_changes_5000: Services whose address changed on restart.
//   - controller_rss_mib_10000: the controller's peak RSS with 10,000
//     assigned Services.
//
// The controller runs as its own process (the binary given by -controller)
// so that its memory is measured alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pharos-lb/pharos/test/bench/figures"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/testenv"
)

var (
	controllerBin = flag.String("controller", "bin/controller", "controller binary to measure")
	services      = flag.Int("services", 5000, "Services in the backlog and restart figures")
	rssServices   = flag.Int("rss-services", 10000, "Services held when peak RSS is read")
	workDir       = flag.String("workdir", "_output/bench/controller", "directory for the kubeconfig and the controller's log")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

type bench struct {
	env    *envtest.Environment
	cfg    *rest.Config
	c      client.WithWatch
	kubecf string
}

func run() error {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1beta1.AddToScheme(scheme)
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		return err
	}
	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = -1, 0 // the bare client: no client-side limit
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	user, err := env.AddUser(envtest.User{Name: "pharos-bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	b := &bench{env: env, cfg: cfg, c: c, kubecf: filepath.Join(*workDir, "kubeconfig")}
	if err := os.WriteFile(b.kubecf, kc, 0o600); err != nil {
		return err
	}
	ctx := context.Background()
	n := *services

	pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/17"}}}
	if err := c.Create(ctx, pool); err != nil {
		return err
	}

	// The ceiling: Services of another class, with addresses outside the
	// pool, so the controller neither serves nor holds them.
	ceilNs := mkNamespace(ctx, c, "ceiling")
	fmt.Fprintf(os.Stderr, "creating %d Services for the ceiling\n", n)
	if err := createServices(ctx, c, ceilNs, 0, n, ptr.To("bench.pharos.io/ceiling")); err != nil {
		return err
	}
	var ceilList corev1.ServiceList
	if err := c.List(ctx, &ceilList, client.InNamespace(ceilNs)); err != nil {
		return err
	}
	// Both figures end when the same watcher has seen every address, so
	// the ceiling bears the watch load that the controller's run bears.
	start := time.Now()
	writes := make(chan error, 1)
	go func() {
		writes <- parallel(len(ceilList.Items), func(i int) error {
			s := &ceilList.Items[i]
			vip := corev1.LoadBalancerIPModeVIP
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("198.18.%d.%d", 128+i/256, i%256), IPMode: &vip}}
			return c.Status().Update(ctx, s)
		})
	}()
	if err := waitAssigned(ctx, c, ceilNs, n, 10*time.Minute); err != nil {
		return err
	}
	if err := <-writes; err != nil {
		return err
	}
	ceiling := time.Since(start).Seconds()
	figures.Report("ApiserverStatusCeiling", "apiserver_status_ceiling_5000_s", ceiling)

	// The backlog: Services created while no controller runs.
	backlogNs := mkNamespace(ctx, c, "backlog")
	fmt.Fprintf(os.Stderr, "creating %d Services for the backlog\n", n)
	if err := createServices(ctx, c, backlogNs, 0, n, nil); err != nil {
		return err
	}
	start = time.Now()
	proc, err := b.startController()
	if err != nil {
		return err
	}
	if err := waitAssigned(ctx, c, backlogNs, n, 10*time.Minute); err != nil {
		return err
	}
	backlog := time.Since(start).Seconds()
	figures.Report("AssignBacklog", "assign_backlog_5000_s", backlog)
	printReconcileMetrics()
	figures.Report("AssignBacklogRatio", "assign_backlog_ratio_to_ceiling", backlog/ceiling)
	before, err := ingressByName(ctx, c, backlogNs)
	if err != nil {
		return err
	}

	// Restart with n assigned Services.
	if err := stop(proc); err != nil {
		return err
	}
	start = time.Now()
	proc, err = b.startController()
	if err != nil {
		return err
	}
	if err := createServices(ctx, c, backlogNs, n, n+1, nil); err != nil {
		return err
	}
	if err := waitAssigned(ctx, c, backlogNs, n+1, 5*time.Minute); err != nil {
		return err
	}
	figures.Report("RestartResync", "restart_resync_5000_s", time.Since(start).Seconds())
	after, err := ingressByName(ctx, c, backlogNs)
	if err != nil {
		return err
	}
	changes := 0
	for name, ip := range before {
		if after[name] != ip {
			changes++
		}
	}
	figures.Report("RestartIPChanges", "restart_ip_changes_5000", float64(changes))

	// Peak memory while holding rssServices.
	total := *rssServices
	fmt.Fprintf(os.Stderr, "creating %d more Services for the memory figure\n", total-n-1)
	if err := createServices(ctx, c, backlogNs, n+1, total, nil); err != nil {
		return err
	}
	if err := waitAssigned(ctx, c, backlogNs, total, 10*time.Minute); err != nil {
		return err
	}
	rss, err := peakRSSMiB(proc.Process.Pid)
	if err != nil {
		return err
	}
	figures.Report("ControllerRSS", "controller_rss_mib_10000", rss)
	return stop(proc)
}

// report prints one benchmark line that hack/benchmerge understands.

func (b *bench) startController() (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(*workDir, "controller.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(*controllerBin, "--kubeconfig", b.kubecf, "--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:17472", "--health-probe-bind-address=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w (run make build first)", *controllerBin, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// An exit status after SIGTERM is expected; failing to wait is not.
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return err
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("the controller did not stop within 30s of SIGTERM")
	}
}

func peakRSSMiB(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func mkNamespace(ctx context.Context, c client.Client, name string) string {
	_ = c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

// parallel runs f for 0..n-1 on 8 workers, like the controller's.
func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	var first error
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return first
}

func createServices(ctx context.Context, c client.Client, ns string, from, to int, class *string) error {
	return parallel(to-from, func(i int) error {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%05d", from+i)},
			Spec: corev1.ServiceSpec{
				Type:              corev1.ServiceTypeLoadBalancer,
				LoadBalancerClass: class,
				Selector:          map[string]string{"app": "bench"},
				Ports:             []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
				// No NodePorts: 10,000 Services would exhaust the range.
				AllocateLoadBalancerNodePorts: ptr.To(false),
			},
		}
		return c.Create(ctx, s)
	})
}

func ingressByName(ctx context.Context, c client.Client, ns string) (map[string]string, error) {
	var list corev1.ServiceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			out[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
		}
	}
	return out, nil
}

// waitAssigned watches the namespace until want Services have an address.
func waitAssigned(ctx context.Context, c client.WithWatch, ns string, want int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var list corev1.ServiceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	assigned := map[string]bool{}
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			assigned[s.Name] = true
		}
	}
	rv := list.ResourceVersion
	for len(assigned) < want {
		w, err := c.Watch(ctx, &corev1.ServiceList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		if err != nil {
			return fmt.Errorf("%d of %d assigned: %w", len(assigned), want, err)
		}
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			rv = s.ResourceVersion
			assigned[s.Name] = len(s.Status.LoadBalancer.Ingress) > 0
			if !assigned[s.Name] {
				delete(assigned, s.Name)
			}
			if len(assigned) >= want {
				break
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d Services assigned after %s", len(assigned), want, timeout)
		}
	}
	return nil
}

// printReconcileMetrics shows, on stderr, how the controller's reconciles
// ended, to explain the backlog figure.
func printReconcileMetrics() {
	resp, err := http.Get("http://127.0.0.1:17472/metrics")
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "controller_runtime_reconcile_total") || strings.HasPrefix(line, "rest_client_requests_total") {
			fmt.Fprintln(os.Stderr, line)
		}
	}
}
