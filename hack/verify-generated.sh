#!/usr/bin/env bash
# verify-generated.sh runs `make generate` and fails if that changed anything
# under api/, config/ or charts/pharos/crds/: the generated deep-copy code,
# CRDs, RBAC roles and the chart's copy of the CRDs in the tree must be what
# the Go types and kubebuilder markers produce (a stale, missing or extra
# file in charts/pharos/crds/ counts).
#
# In CI the tree is a clean clone, so this fails exactly when the committed
# generated files are stale. In a working tree with uncommitted changes it
# checks the files as they are now (and says that they are not committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated=(api config charts/pharos/crds)

# Every generated file with its content hash, plus git's view.
snapshot() {
  find "${generated[@]}" -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 -r sha256sum
  git status --porcelain --untracked-files=all -- "${generated[@]}"
}

before="$(snapshot)"
"${MAKE:-make}" --no-print-directory generate
after="$(snapshot)"

if [ "$before" != "$after" ]; then
  echo >&2
  echo "verify-generated: 'make generate' changed generated files:" >&2
  git status --short --untracked-files=all -- "${generated[@]}" >&2
  git --no-pager diff --stat -- "${generated[@]}" >&2
  echo "The generated files were stale: run make generate and commit the result." >&2
  exit 1
fi

if [ -n "$(git status --porcelain --untracked-files=all -- "${generated[@]}")" ]; then
  echo "verify-generated: generated files are up to date, but ${generated[*]} have uncommitted changes:"
  git status --short --untracked-files=all -- "${generated[@]}"
  echo "(CI checks the committed tree: commit them together with the types.)"
else
  echo "verify-generated: generated files are up to date."
fi
