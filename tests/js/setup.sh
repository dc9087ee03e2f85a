#!/usr/bin/env bash
# Installs the npm test helpers into the build tree (never into the source tree).
set -euo pipefail
dest="$1"
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$dest"
cp "$src/package.json" "$dest/package.json"
if [ -d "$dest/node_modules/jose" ] && [ -d "$dest/node_modules/logfmt" ] && [ -d "$dest/node_modules/oidc-provider" ]; then exit 0; fi
cd "$dest"
npm install --no-audit --no-fund --loglevel=error
