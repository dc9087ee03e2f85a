#!/usr/bin/env bash
# Installs the manifest checks' npm packages (exact versions, package.json beside this script)
# into the build tree, never into the source tree. Its own tree: the other helpers' (../setup.sh)
# is pruned to their package.json on each install.
set -euo pipefail
dest="$1"
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$dest"
if cmp -s "$src/package.json" "$dest/package.json" && [ -d "$dest/node_modules/kubernetes-models" ] &&
   [ -d "$dest/node_modules/yaml" ]; then
  exit 0
fi
cp "$src/package.json" "$dest/package.json"
cd "$dest"
npm install --no-audit --no-fund --loglevel=error
