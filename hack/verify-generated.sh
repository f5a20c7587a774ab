#!/usr/bin/env bash
# verify-generated.sh runs `make generate` and fails if that changed anything
# under api/ or config/: the generated deep-copy code, CRDs and ClusterRole in
# the tree must be what the Go types and kubebuilder markers produce.
#
# In CI the tree is a clean clone, so this fails exactly when the committed
# generated files are stale. In a working tree with uncommitted changes it
# checks the files as they are now (and says that they are not committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Every file under api/ and config/ with its content hash, plus git's view.
snapshot() {
  find api config -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  git status --porcelain --untracked-files=all -- api config
}

before="$(snapshot)"
"${MAKE:-make}" --no-print-directory generate
after="$(snapshot)"

if [ "$before" != "$after" ]; then
  echo >&2
  echo "verify-generated: 'make generate' changed generated files:" >&2
  git status --short --untracked-files=all -- api config >&2
  git --no-pager diff --stat -- api config >&2
  echo "The generated files were stale: run make generate and commit the result." >&2
  exit 1
fi

if [ -n "$(git status --porcelain --untracked-files=all -- api config)" ]; then
  echo "verify-generated: generated files are up to date, but api/ or config/ has uncommitted changes:"
  git status --short --untracked-files=all -- api config
  echo "(CI checks the committed tree: commit them together with the types.)"
else
  echo "verify-generated: generated files are up to date."
fi
