#!/usr/bin/env bash
# ctest entry: the offline schema check of deploy/kubernetes/ and deploy/kubernetes/snapshots/
# (schema_check.mjs), run beside the npm tree that setup.sh installed (node resolves
# kubernetes-models and yaml from the script's own directory).
set -euo pipefail
NPM_DIR="$1"; DEPLOY="$2"
here="$(cd "$(dirname "$0")" && pwd)"
cp "$here/schema_check.mjs" "$NPM_DIR/schema_check.mjs"
exec node "$NPM_DIR/schema_check.mjs" "$DEPLOY" "$DEPLOY/snapshots"
