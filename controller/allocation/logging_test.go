package allocation_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

// TestDecisionLoggedOncePerChange: the controller logs one line when a
// Service's allocation decision changes (refused, assigned, moved to
// another address), however often the Service is reconciled in between.
func TestDecisionLoggedOncePerChange(t *testing.T) {
	ns := testNamespace(t, nil)
	createPool(t, "logs", []string{"198.18.57.0/30"}, noAutoAssign)
	logs := &logLines{}
	startController(t, controllerOpts{logger: logs.logger()})
	service := `"service"="` + ns + `/web"`
	lines := func(msg string) []string { return logs.matching(`"msg"="`+msg+`"`, service) }
	want := func(step string, refused, allocated int) {
		t.Helper()
		check := func() string {
			r, a := lines("Service is not allocated"), lines("Service allocated")
			if len(r) != refused || len(a) != allocated {
				return fmt.Sprintf("%s: %d refusal and %d allocation lines, want %d and %d:\n%s", step, len(r), len(a), refused, allocated, strings.Join(append(r, a...), "\n"))
			}
			return ""
		}
		eventually(t, waitTime, check)
		// Reconciled again (its own status write, a label), it logs nothing.
		updateService(t, ns, "web", func(s *corev1.Service) { s.Labels = map[string]string{"step": fmt.Sprint(time.Now().UnixNano())} })
		consistently(t, time.Second, check)
	}

	createService(t, ns, "web", annotate(v1beta1.AnnotationAddressPool, "logs-missing"))
	waitReason(t, ns, "web", "NoMatchingPool", "logs-missing")
	want("refused", 1, 0)

	updateService(t, ns, "web", func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationAddressPool] = "logs" })
	waitIPs(t, ns, "web", "198.18.57.0")
	want("assigned", 1, 1)
	if a := lines("Service allocated"); len(a) == 1 && !strings.Contains(a[0], `assigned 198.18.57.0 from IPAddressPool \"logs\"`) {
		t.Errorf("the allocation line does not name the address and the pool: %s", a[0])
	}

	updateService(t, ns, "web", func(s *corev1.Service) { s.Annotations[v1beta1.AnnotationLoadBalancerIPs] = "198.18.57.2" })
	waitIPs(t, ns, "web", "198.18.57.2")
	want("moved to the address it asks for", 1, 2)
}
