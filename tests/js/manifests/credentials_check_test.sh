#!/usr/bin/env bash
# ctest entry: the deployment's credential steps run for real (credentials_check.mjs), beside
# the npm tree that setup.sh installed.
set -euo pipefail
VG="$1"; NPM_DIR="$2"; DEPLOY="$3"
here="$(cd "$(dirname "$0")" && pwd)"
cp "$here/credentials_check.mjs" "$NPM_DIR/credentials_check.mjs"
exec node "$NPM_DIR/credentials_check.mjs" "$VG" "$DEPLOY"
