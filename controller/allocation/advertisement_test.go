package allocation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pharos-lb/pharos/api/v1beta1"
)

func TestL2AdvertisementValidCondition(t *testing.T) {
	startController(t, controllerOpts{})
	create := func(name string, spec v1beta1.L2AdvertisementSpec) {
		adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		if err := k8s.Create(context.Background(), adv); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), adv) })
	}
	waitValid := func(name, status, reason, msg string) {
		t.Helper()
		eventually(t, waitTime, func() string {
			adv := &v1beta1.L2Advertisement{}
			if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, adv); err != nil {
				return err.Error()
			}
			c := meta.FindStatusCondition(adv.Status.Conditions, "Valid")
			if c == nil || string(c.Status) != status || c.Reason != reason || !strings.Contains(c.Message, msg) {
				return fmt.Sprintf("L2Advertisement %s condition %+v, want %s/%s with %q", name, c, status, reason, msg)
			}
			return ""
		})
	}
	// What the schema can check, the apiserver rejects at once.
	dup := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "dup"}, Spec: v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth0", "eth0"}}}
	if err := k8s.Create(context.Background(), dup); err == nil || !strings.Contains(err.Error(), "spec.interfaces[1]") {
		t.Errorf("duplicate interfaces: %v", err)
	}
	// The rest gets the Valid condition.
	create("bad-selector", v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Near"}}}}})
	waitValid("bad-selector", "False", "InvalidSpec", "spec.nodeSelectors[0]")
	create("later-pool", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"adv-later"}})
	waitValid("later-pool", "True", "PoolMissing", `adv-later does not exist yet`)
	createPool(t, "adv-later", []string{"198.18.41.0/24"})
	waitValid("later-pool", "True", "Valid", "valid")
}
