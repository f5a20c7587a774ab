package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeCredentials creates the lab CA and the apiserver's certificate, the
// service-account key pair, the static tokens and one kubeconfig per
// identity.
func (l *Lab) writeCredentials(context.Context) error {
	if err := l.writePKI(); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.pkiDir(), "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.pkiDir(), "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	var tokens strings.Builder
	for _, id := range l.identities() {
		tok := randomToken()
		if id.file == "admin" {
			l.adminToken = tok
		}
		fmt.Fprintf(&tokens, "%s,%s,%s,\"%s\"\n", tok, id.user, id.user, strings.Join(id.groups, ","))
		if err := os.WriteFile(filepath.Join(l.Dir, id.file+".kubeconfig"), []byte(kubeconfig(l.APIServer(), id.user, tok)), 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(l.pkiDir(), "tokens.csv"), []byte(tokens.String()), 0o600)
}

type identity struct {
	file, user string
	groups     []string
}

// identities are the lab's users. Each component gets the identity its
// default RBAC binding expects; Pharos's controller gets only its
// ClusterRole from config/rbac.
func (l *Lab) identities() []identity {
	return []identity{
		{"admin", "lab-admin", []string{"system:masters"}},
		{"kube-controller-manager", "system:kube-controller-manager", nil},
		{"kube-scheduler", "system:kube-scheduler", nil},
		{"kube-proxy", "system:kube-proxy", nil},
		// The node agent stands in for the kubelet, which RBAC alone (no
		// Node authorizer here) cannot scope to one node.
		{"node-agent", "lab-node-agent", []string{"system:masters"}},
		{"pharos-controller", "pharos-controller", []string{"pharos:controllers"}},
		{"pharos-speaker", "pharos-speaker", []string{"pharos:speakers"}},
	}
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func kubeconfig(server, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: lab
  context: {cluster: lab, user: %q}
current-context: lab
`, server, user, token, user)
}
