#!/usr/bin/env bash
# ci-deps.sh installs the Debian packages that the tests need and a fresh
# Debian or Ubuntu machine may lack: etcd-server (the integration tests run a
# real etcd), and the networking tools that the lab and the layer-2 tests
# need. It does nothing when they are all installed, so it is safe to run
# every time. The Makefile's check (hack/host-deps.sh) runs it as root on
# Debian when a program is missing.
set -euo pipefail

pkgs=(etcd-server iproute2 iputils-ping iputils-arping ndisc6 frr bird2 nftables iptables conntrack curl util-linux procps)

if ! command -v dpkg >/dev/null 2>&1; then
  echo "ci-deps: dpkg not found; this script supports Debian and Ubuntu only." >&2
  echo "ci-deps: install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi

installed() {
  dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'
}

missing=()
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ci-deps: all present: ${pkgs[*]}"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "ci-deps: missing ${missing[*]}, and installing them needs root: run as root or install sudo" >&2
  exit 1
fi

echo "ci-deps: missing ${missing[*]}"
echo "ci-deps: ${as_root[*]:+${as_root[*]} }apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
echo "ci-deps: ${as_root[*]:+${as_root[*]} }apt-get install -y --no-install-recommends ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  installed "$p" || { echo "ci-deps: $p is still not installed" >&2; exit 1; }
done
echo "ci-deps: installed ${missing[*]}"
