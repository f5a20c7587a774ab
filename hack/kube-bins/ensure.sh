#!/usr/bin/env bash
# ensure.sh builds the pinned Kubernetes binaries once and caches them by
# version. It prints the directory that holds them, which also holds a link
# to etcd, so it can serve as KUBEBUILDER_ASSETS.
#
# Usage: hack/kube-bins/ensure.sh [binary ...]   (default: all)
set -euo pipefail

KUBE_VERSION=v1.37.2
here="$(cd "$(dirname "$0")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pharos/kube/${KUBE_VERSION}"
mkdir -p "$cache"

# etcd first: without it the binaries are of no use, and a first build
# takes minutes.
etcd_bin="$(command -v etcd || true)"
if [ -z "$etcd_bin" ] && [ -x /usr/bin/etcd ]; then etcd_bin=/usr/bin/etcd; fi
if [ -z "$etcd_bin" ]; then
  echo "etcd not found: install Debian's etcd-server (apt-get install etcd-server, or hack/ci-deps.sh)" >&2
  exit 1
fi

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  bins=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl)
fi

# The version is stamped the way Kubernetes' own build does
# (hack/lib/version.sh), so the apiserver reports v1.37.2 and not
# v0.0.0-master: Helm checks a chart's kubeVersion against it.
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# A binary is reused only if it was built with these flags.
stamp="$KUBE_VERSION $ldflags"

for b in "${bins[@]}"; do
  if [ -x "$cache/$b" ] && [ "$(cat "$cache/.$b.stamp" 2>/dev/null)" = "$stamp" ]; then
    continue
  fi
  echo "building $b $KUBE_VERSION into $cache (cached afterwards)" >&2
  ( cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" \
      -o "$cache/$b.tmp" "k8s.io/kubernetes/cmd/$b" ) >&2
  mv "$cache/$b.tmp" "$cache/$b"
  echo "$stamp" > "$cache/.$b.stamp"
done

ln -sf "$etcd_bin" "$cache/etcd"
echo "$cache"
