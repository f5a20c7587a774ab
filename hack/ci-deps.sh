#!/usr/bin/env bash
# ci-deps.sh installs the Debian packages that the tests need and a fresh
# Debian or Ubuntu machine may lack: etcd-server (the integration tests run a
# real etcd), the networking tools that the lab and the layer-2 tests need,
# and prometheus (promtool tests the alerting rules; the e2e lab runs its own
# server, so the package's system service is kept stopped and disabled),
# and buildah (make image-archive builds Pharos's image with it, without a
# Docker engine). It does nothing when they are all installed, so it is safe to run
# every time. The Makefile's check (hack/host-deps.sh) runs it as root on
# Debian when a program is missing.
set -euo pipefail

pkgs=(etcd-server iproute2 iputils-ping iputils-arping ndisc6 frr bird2 nftables iptables conntrack curl util-linux procps prometheus buildah)

if ! command -v dpkg >/dev/null 2>&1; then
  echo "ci-deps: dpkg not found; this script supports Debian and Ubuntu only." >&2
  echo "ci-deps: install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi

# A package is there when dpkg has it unpacked and configured, whatever
# its selection: "hold ok installed" (apt-mark hold) counts, and apt-get
# install would not change it ("already the newest version"). The status is
# read whole, never piped into grep -q: under pipefail, grep -q quitting at
# its first match kills dpkg with SIGPIPE now and then (exit 141), and an
# installed package then looked missing (CI failed so on prometheus).
installed() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [[ $status =~ ^[a-z]+\ ok\ installed$ ]]
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

# Debian's prometheus package starts a system-wide server on :9090 when it
# is installed. The tests want only promtool and the binary: a policy-rc.d
# that denies every start keeps it from starting during this install (the
# other packages' services start as before, in a separate apt-get run).
install_quietly() {
  local policy=/usr/sbin/policy-rc.d
  if "${as_root[@]}" test -e "$policy"; then
    # Already there (a container's, which denies starts): keep it.
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    return
  fi
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  local rc=0
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" || rc=$?
  "${as_root[@]}" rm -f "$policy"
  return $rc
}

quiet=() others=()
for p in "${missing[@]}"; do
  if [ "$p" = prometheus ]; then quiet+=("$p"); else others+=("$p"); fi
done
if [ ${#others[@]} -gt 0 ]; then
  echo "ci-deps: ${as_root[*]:+${as_root[*]} }apt-get install -y --no-install-recommends ${others[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${others[@]}"
fi
if [ ${#quiet[@]} -gt 0 ]; then
  echo "ci-deps: apt-get install -y --no-install-recommends ${quiet[*]}, without starting its service"
  install_quietly "${quiet[@]}"
  # Whatever started it anyway (a policy-rc.d that allows it), stop it, and
  # keep it from starting at boot.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    "${as_root[@]}" systemctl disable prometheus.service >/dev/null 2>&1 || true
    if [ -x /etc/init.d/prometheus ]; then
      "${as_root[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    "${as_root[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

for p in "${missing[@]}"; do
  installed "$p" || { echo "ci-deps: $p is still not installed; dpkg says: $(dpkg-query -W -f='${Status}' "$p" 2>&1 || true)" >&2; exit 1; }
done
echo "ci-deps: installed ${missing[*]}"
