package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

const (
	// tokenTTL is what the agent asks for; the kubelet asks for an hour
	// too (and gets it extended, which the lab does not need).
	tokenTTL = int64(3600)
	// tokenRefreshFraction: like the kubelet, a token is replaced once 80%
	// of its lifetime has passed, long before a client could see it expire.
	tokenRefreshFraction = 0.8
)

// credentials are a Pharos pod's identity on disk: a token of its
// ServiceAccount bound to the pod, and a kubeconfig that reads it. They are
// how the pod's process acts as system:serviceaccount:<ns>:<sa> with only
// the RBAC its chart grants, as with the projected token a kubelet mounts.
type credentials struct {
	dir       string // <StateDir>/<namespace>_<name>
	uid, gid  int64  // owner of the files: the container's user
	refreshAt time.Time
}

func (c *credentials) kubeconfigPath() string { return filepath.Join(c.dir, "kubeconfig") }
func (c *credentials) tokenPath() string      { return filepath.Join(c.dir, "token") }

// newCredentials requests a token for the pod and writes it and a
// kubeconfig into a fresh directory, readable only by the container's user.
func (m *podManager) newCredentials(ctx context.Context, pod *corev1.Pod, uid, gid int64) (*credentials, error) {
	caPEM, err := os.ReadFile(m.opts.APIServerCA)
	if err != nil {
		return nil, fmt.Errorf("read the apiserver's CA: %w", err)
	}
	c := &credentials{dir: filepath.Join(m.opts.StateDir, pod.Namespace+"_"+pod.Name), uid: uid, gid: gid}
	// Whatever an earlier run of the pod left (an old token) goes.
	if err := os.RemoveAll(c.dir); err != nil {
		return nil, err
	}
	// The directory is root's and searchable by all; the files in it are
	// the container user's alone.
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	if err := c.refresh(ctx, m, pod); err != nil {
		return nil, err
	}
	user := "system:serviceaccount:" + pod.Namespace + ":" + pod.Spec.ServiceAccountName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: m.opts.APIServer, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{TokenFile: c.tokenPath()}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: user, Namespace: pod.Namespace}
	cfg.CurrentContext = "lab"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, err
	}
	if err := writeOwned(c.kubeconfigPath(), data, uid, gid); err != nil {
		return nil, err
	}
	return c, nil
}

// refresh requests a new token and replaces the token file with it. The
// file is replaced atomically, and the pod's client-go re-reads it about
// once a minute (tokenFile), so a running process picks it up unharmed.
func (c *credentials) refresh(ctx context.Context, m *podManager, pod *corev1.Pod) error {
	tr, err := m.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(tokenTTL),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token for ServiceAccount %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err)
	}
	if tr.Status.Token == "" {
		return fmt.Errorf("the token request for ServiceAccount %s/%s returned no token", pod.Namespace, pod.Spec.ServiceAccountName)
	}
	if err := writeOwned(c.tokenPath(), []byte(tr.Status.Token), c.uid, c.gid); err != nil {
		return err
	}
	now := time.Now()
	ttl := time.Duration(tokenTTL) * time.Second
	if exp := tr.Status.ExpirationTimestamp.Time; exp.After(now) {
		ttl = exp.Sub(now)
	}
	c.refreshAt = now.Add(time.Duration(float64(ttl) * tokenRefreshFraction))
	return nil
}

// remove deletes the pod's credentials; a nil c has none.
func (c *credentials) remove() error {
	if c == nil {
		return nil
	}
	return os.RemoveAll(c.dir)
}

// writeOwned atomically replaces path with data, mode 0600, owned by
// uid:gid.
func writeOwned(path string, data []byte, uid, gid int64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
