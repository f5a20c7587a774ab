package kubecheck

import (
	"fmt"
	"strconv"
	"strings"
)

// MinKubernetes is the oldest Kubernetes Pharos runs on: 1.29 brought
// status.loadBalancer.ingress[].ipMode (beta, on by default), which the
// forwarding modes write. The chart declares no kubeVersion, so that
// `helm template` renders offline (Helm then assumes v1.20); the
// controller and the speakers check the real server instead.
var MinKubernetes = [2]int{1, 29}

// versionAtLeast reports whether a server's gitVersion ("v1.37.2",
// "v1.30.4+k3s1", "v1.29.0-eks-1234") is at least major.minor.
func versionAtLeast(gitVersion string, min [2]int) (bool, error) {
	v := strings.TrimPrefix(gitVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false, fmt.Errorf("cannot read the Kubernetes version %q", gitVersion)
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return false, fmt.Errorf("cannot read the Kubernetes version %q", gitVersion)
	}
	minorText := parts[1]
	if i := strings.IndexFunc(minorText, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorText = minorText[:i]
	}
	minor, err := strconv.Atoi(minorText)
	if err != nil {
		return false, fmt.Errorf("cannot read the Kubernetes version %q", gitVersion)
	}
	return major > min[0] || (major == min[0] && minor >= min[1]), nil
}
