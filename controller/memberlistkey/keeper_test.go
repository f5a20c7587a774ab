package memberlistkey_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pharos-lb/pharos/controller/memberlistkey"
	"github.com/pharos-lb/pharos/internal/speakerlist"
	"github.com/pharos-lb/pharos/internal/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a real kube-apiserver:", err)
		os.Exit(1)
	}
	k8s, err = client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err == nil {
		err = k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pharos-system"}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func secret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "pharos-system", Name: name}, Data: data}
}

func keyOf(t *testing.T, name string) []byte {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "pharos-system", Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data[speakerlist.KeySecretField]
}

func TestKeeper(t *testing.T) {
	ctx := context.Background()
	user := []byte("0123456789abcdef0123456789abcdef") // 32 raw bytes, set by hand
	for _, s := range []*corev1.Secret{
		secret("empty", nil),
		secret("users-key", map[string][]byte{"key": user}),
		secret("bad-key", map[string][]byte{"key": []byte("short"), "note": []byte("kept")}),
	} {
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		keep    []byte // the key that must stay, or nil for a new one
		created bool
	}{
		{name: "empty"},
		{name: "users-key", keep: user},
		{name: "bad-key"},
		{name: "missing", created: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &memberlistkey.Keeper{Secret: types.NamespacedName{Namespace: "pharos-system", Name: tc.name}, Reader: k8s, Writer: k8s}
			if err := k.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			got := keyOf(t, tc.name)
			if tc.keep != nil && !bytes.Equal(got, tc.keep) {
				t.Fatalf("a valid key was replaced")
			}
			if parsed, err := speakerlist.ParseKey(got); err != nil || len(parsed) < 16 {
				t.Fatalf("key after Ensure: %q: %v", got, err)
			}
			// A second replica, or the next check, changes nothing.
			if err := k.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			if again := keyOf(t, tc.name); !bytes.Equal(again, got) {
				t.Fatal("a second Ensure replaced a valid key: speakers that restarted later would not meet the others")
			}
		})
	}
	var s corev1.Secret
	_ = k8s.Get(ctx, types.NamespacedName{Namespace: "pharos-system", Name: "bad-key"}, &s)
	if string(s.Data["note"]) != "kept" {
		t.Error("replacing a bad key dropped the Secret's other fields")
	}
}
