#!/usr/bin/env bash
# host-deps.sh checks, before anything long is built, that this machine has
# the programs that the tests and the lab run. The Makefile runs it first in
# the targets that need them (make deps runs it alone).
#
# When some are missing: as root on Debian or Ubuntu (apt-get), it installs
# them with hack/ci-deps.sh; otherwise it stops at once, naming them, their
# Debian packages and the command that installs them. HOST_DEPS_INSTALL=no
# makes it stop even as root.
#
# Usage: hack/host-deps.sh kube|test|lab|image
#   kube  go and etcd: hack/kube-bins/ensure.sh and kube-apiserver need them
#   test  kube; as root also ip and arping, for the layer-2 tests that then
#         run in network namespaces (they skip without root)
#   lab   kube and everything the lab, the demo and the e2e tests run;
#         also checks that it runs as root, which the lab needs
#   image buildah, with which make image-archive (and the Helm e2e suite)
#         builds Pharos's image
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# The Debian package of each program (what hack/ci-deps.sh installs).
declare -A pkg_of=(
  [etcd]=etcd-server [ip]=iproute2 [nsenter]=util-linux [nft]=nftables
  [iptables]=iptables [conntrack]=conntrack [sysctl]=procps [curl]=curl
  [ping]=iputils-ping [arping]=iputils-arping [ndisc6]=ndisc6
  [vtysh]=frr [bird]=bird2 [promtool]=prometheus [prometheus]=prometheus
  [buildah]=buildah
)

case "${1:-}" in
  kube) progs=(etcd) ;;
  test)
    progs=(etcd)
    if [ "$(id -u)" -eq 0 ]; then progs+=(ip arping ndisc6 vtysh bird promtool); fi
    ;;
  lab)
    progs=(etcd ip nsenter nft iptables conntrack sysctl curl ping arping ndisc6 vtysh prometheus)
    # Several of them are in /usr/sbin, on root's PATH only.
    if [ "$(id -u)" -ne 0 ]; then
      echo "host-deps: the lab needs root (network namespaces, veth, nftables): run it with sudo, e.g. sudo make demo" >&2
      exit 1
    fi
    ;;
  image) progs=(buildah) ;;
  *) echo "usage: $0 kube|test|lab|image" >&2; exit 2 ;;
esac

# Go is not a Debian package here (Debian's is older than go.mod wants).
if ! command -v go >/dev/null 2>&1; then
  echo "host-deps: go is not on PATH ($PATH): install Go (go.mod names the version; https://go.dev/dl/)." >&2
  if [ "$(id -u)" -eq 0 ]; then
    echo "host-deps: if Go is installed and you ran make with sudo, sudo's secure_path dropped it: sudo env PATH=\"\$PATH\" make ..." >&2
  fi
  exit 1
fi

missing_progs() {
  missing=()
  for p in "${progs[@]}"; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
  done
}

# describe sets what (the missing programs with their packages) and
# packages (the packages to install).
describe() {
  local p
  what= packages=()
  for p in "${missing[@]}"; do
    what+="${what:+, }$p (${pkg_of[$p]})"
    [[ " ${packages[*]} " == *" ${pkg_of[$p]} "* ]] || packages+=("${pkg_of[$p]}")
  done
}

missing_progs
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
describe

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${HOST_DEPS_INSTALL:-yes}" != no ]; then
  echo "host-deps: missing programs (Debian package): $what; installing them with hack/ci-deps.sh (HOST_DEPS_INSTALL=no to stop instead)" >&2
  if ! "$here/ci-deps.sh" >&2; then
    echo "host-deps: hack/ci-deps.sh failed (above); install by hand: apt-get install ${packages[*]}" >&2
    exit 1
  fi
  missing_progs
  if [ ${#missing[@]} -ne 0 ]; then
    describe
    echo "host-deps: still not on PATH after hack/ci-deps.sh (Debian package): $what (PATH=$PATH)" >&2
    exit 1
  fi
  exit 0
fi

echo "host-deps: missing programs (Debian package): $what." >&2
if command -v apt-get >/dev/null 2>&1; then
  sudo=sudo
  if [ "$(id -u)" -eq 0 ]; then sudo=; fi
  echo "host-deps: install them with: ${sudo:+$sudo }apt-get update && ${sudo:+$sudo }apt-get install ${packages[*]}" >&2
  echo "host-deps: (or with hack/ci-deps.sh, which installs every package the tests and the lab need)" >&2
else
  echo "host-deps: install your distribution's packages that provide them (on Debian: ${packages[*]})." >&2
fi
exit 1
