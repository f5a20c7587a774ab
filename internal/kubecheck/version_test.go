package kubecheck

import "testing"

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"v1.37.2", true}, {"v1.29.0", true}, {"v1.30.4+k3s1", true}, {"v1.29.0-eks-1234", true},
		{"v1.28.15", false}, {"v1.20.0", false}, {"v2.0.0", true}, {"v1.29", true},
	} {
		got, err := versionAtLeast(tc.v, MinKubernetes)
		if err != nil || got != tc.want {
			t.Errorf("versionAtLeast(%q) = %v, %v; want %v", tc.v, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "vX.Y", "v1"} {
		if _, err := versionAtLeast(bad, MinKubernetes); err == nil {
			t.Errorf("versionAtLeast(%q): no error", bad)
		}
	}
}
