// Package ociimage describes Pharos's container image and reads OCI image
// archives.
//
// Pharos is the one description of the image: hack/image builds it with
// buildah from it, and test/image checks that the Dockerfile describes the
// same image and that a built archive holds it. Open and Image read an
// archive (an OCI image layout in a tar file, as `buildah commit
// oci-archive:...` writes it) and unpack its layers, for those checks and
// for the lab, whose node agents run Pharos's pods from the image's files.
package ociimage

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
)

// Repository is where a release publishes the image, and where the chart
// pulls it from by default (values.yaml's image.repository).
const Repository = "ghcr.io/pharos-lb/pharos"

// File is one file of the image: a static Go binary.
type File struct {
	// Path is where it is in the image, e.g. "/controller".
	Path string
	// Package is the Go package built into it, e.g. "./controller".
	Package string
}

// Spec describes an image built FROM scratch out of static Go binaries.
type Spec struct {
	// Base is the base image of the final stage: "scratch", nothing.
	Base string
	// Files are the image's only files, in the order they are copied.
	Files []File
	// GoEnv and GoFlags are how every binary is built.
	GoEnv, GoFlags []string
	// User is the image's USER, uid:gid.
	User string
	// Entrypoint is the image's ENTRYPOINT; there is no CMD.
	Entrypoint []string
	// Env is the image config's environment. The Dockerfile sets none,
	// but docker (and buildah bud) give an image FROM scratch the default
	// PATH, which hack/image sets too, so both configs are the same.
	Env []string
	// Labels are the image config's labels. A value may name a build
	// argument as ${NAME} (as the Dockerfile's LABEL does).
	Labels map[string]string
	// BuildArgs are the build arguments that Labels use, with the defaults
	// the Dockerfile gives them.
	BuildArgs map[string]string
}

// Pharos is Pharos's image: the controller (the entrypoint; the chart runs
// the controller Deployment, the webhook check and the uninstall hook with
// it), the speaker and the kubectl plugin, on nothing. No shell, no CA
// certificates: the binaries talk only to the apiserver, whose CA comes
// with the pod's ServiceAccount, and to other speakers and BGP routers
// without TLS; they run no other program.
var Pharos = Spec{
	Base: "scratch",
	Files: []File{
		{Path: "/controller", Package: "./controller"},
		{Path: "/speaker", Package: "./speaker"},
		{Path: "/kubectl-pharos", Package: "./kubectl-pharos"},
	},
	GoEnv:      []string{"CGO_ENABLED=0"},
	GoFlags:    []string{"-trimpath", "-ldflags=-s -w"},
	User:       "65532:65532",
	Entrypoint: []string{"/controller"},
	Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Labels: map[string]string{
		"org.opencontainers.image.title":       "pharos",
		"org.opencontainers.image.description": "Pharos, a load balancer for bare-metal Kubernetes: controller, speaker and kubectl-pharos",
		"org.opencontainers.image.source":      "https://github.com/pharos-lb/pharos",
		"org.opencontainers.image.url":         "https://github.com/pharos-lb/pharos",
		// The repository has no LICENSE file yet: SPDX's "no assertion"
		// rather than a guess.
		"org.opencontainers.image.licenses": "NOASSERTION",
		"org.opencontainers.image.version":  "${VERSION}",
		"org.opencontainers.image.revision": "${REVISION}",
	},
	BuildArgs: map[string]string{"VERSION": "dev", "REVISION": "unknown"},
}

// ExpandLabels returns the labels with their build arguments replaced by
// args, or by the defaults for those args does not set.
func (s Spec) ExpandLabels(args map[string]string) map[string]string {
	vals := maps.Clone(s.BuildArgs)
	maps.Copy(vals, args)
	out := make(map[string]string, len(s.Labels))
	for k, v := range s.Labels {
		out[k] = os.Expand(v, func(name string) string { return vals[name] })
	}
	return out
}

// VariableLabels are the labels whose value comes from a build argument.
func (s Spec) VariableLabels() []string {
	var keys []string
	for k, v := range s.Labels {
		if strings.Contains(v, "$") {
			keys = append(keys, k)
		}
	}
	return keys
}

// Paths are the paths of the image's files.
func (s Spec) Paths() []string {
	p := make([]string, len(s.Files))
	for i, f := range s.Files {
		p[i] = f.Path
	}
	return p
}

// ParseUser reads an image config's User as a container runtime does for
// an image without /etc/passwd: "uid:gid", or "uid" (group 0); empty is
// root. Names cannot be looked up in such an image.
func ParseUser(user string) (uid, gid int64, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if uid, err = strconv.ParseInt(u, 10, 32); err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("image user %q: not a numeric uid (an image without /etc/passwd has no names)", user)
	}
	if !hasGroup {
		return uid, 0, nil
	}
	if gid, err = strconv.ParseInt(g, 10, 32); err != nil || gid < 0 {
		return 0, 0, fmt.Errorf("image user %q: not a numeric gid", user)
	}
	return uid, gid, nil
}
