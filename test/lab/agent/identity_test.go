package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
)

func TestCredentials(t *testing.T) {
	pod := pharosTestPod()
	m, cs := managerWith(t, pod)
	m.opts = pharosOptions()
	m.opts.StateDir = t.TempDir()
	m.opts.APIServerCA = filepath.Join(m.opts.StateDir, "ca.crt")
	if err := os.WriteFile(m.opts.APIServerCA, []byte("CA PEM\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var requests []*authenticationv1.TokenRequest
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		requests = append(requests, tr)
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: "token-" + string(rune('0'+len(requests))), ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour)),
		}}, nil
	})
	uid, gid := int64(os.Getuid()), int64(os.Getgid())
	c, err := m.newCredentials(context.Background(), pod, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	if len(requests) != 1 {
		t.Fatalf("%d token requests", len(requests))
	}
	spec := requests[0].Spec
	if ref := spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.Name != pod.Name || ref.UID != pod.UID || *spec.ExpirationSeconds != 3600 {
		t.Errorf("token request %+v", spec)
	}
	if until := time.Until(c.refreshAt); until < 47*time.Minute || until > 49*time.Minute {
		t.Errorf("refresh in %s, want 48m", until)
	}

	cfg, err := clientcmd.LoadFromFile(c.kubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	user := cfg.AuthInfos[ctx.AuthInfo]
	cluster := cfg.Clusters[ctx.Cluster]
	if ctx.AuthInfo != "system:serviceaccount:pharos-system:pharos-controller" || ctx.Namespace != "pharos-system" ||
		user.TokenFile != c.tokenPath() || user.Token != "" ||
		cluster.Server != "https://198.18.96.2:6443" || string(cluster.CertificateAuthorityData) != "CA PEM\n" {
		t.Errorf("kubeconfig context %+v user %+v cluster %+v", ctx, user, cluster)
	}
	for _, f := range []string{c.kubeconfigPath(), c.tokenPath()} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	readToken := func() string {
		b, _ := os.ReadFile(c.tokenPath())
		return string(b)
	}
	if got := readToken(); got != "token-1" {
		t.Errorf("token %q", got)
	}

	// A refresh replaces the file that the kubeconfig names.
	if err := c.refresh(context.Background(), m, pod); err != nil {
		t.Fatal(err)
	}
	if got := readToken(); got != "token-2" {
		t.Errorf("token after refresh %q", got)
	}
	if err := c.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("credentials not removed: %v", err)
	}
}
