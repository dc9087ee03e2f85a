#!/usr/bin/env bash
# The README runs as written: every ```sh block (tests/readme/extract_blocks.py), in order, in
# one shell, against a fresh server started as `make run` starts it (init, then server), from
# a directory laid out like the clone (./build/volguard, ./examples, ./data). The only
# difference from a user's terminal: free ports, named through VOLGUARD_ENDPOINT.
set -euo pipefail
VG="$1"
SRC="$2"
WORK_PREFIX=volguard-readme
# shellcheck source=../cli/server_lib.sh
source "$SRC/tests/cli/server_lib.sh"
start_server

mkdir build
ln -s "$VG" build/volguard
ln -s "$SRC/examples" examples
python3 "$SRC/tests/readme/extract_blocks.py" "$SRC/README.md" > readme.sh 2> blocks.txt \
  || fail "extract: $(cat blocks.txt)"
n=$(awk '{print $1}' blocks.txt)
[ "$n" -ge 6 ] || fail "only $n README blocks found: $(cat blocks.txt)"

cat > run.sh <<RUN
set -euo pipefail
export VOLGUARD_ENDPOINT=$EP
expect_exit() {
  local want=\$1; shift
  local rc=0
  "\$@" || rc=\$?
  if [ "\$rc" != "\$want" ]; then echo "README: '\$*' exited \$rc, the README says \$want" >&2; exit 1; fi
}
$(cat readme.sh)
RUN
if ! bash run.sh > run.out 2> run.err; then
  tail -30 run.out >&2
  fail "a README command failed: $(tail -5 run.err)"
fi
# No token in anything the README's commands printed (the token files themselves aside).
for t in data/admin.token data/user.token tenant-a.token; do
  sig=$(cut -d. -f3 "$t")
  if grep -qF "$sig" run.out run.err; then fail "a README command printed $t"; fi
done
echo "README: $(cat blocks.txt); every command ran as written"
