#!/usr/bin/env bash
# What a newcomer (or a pxctl user) types: parse errors never echo a value (a mistyped --tokn
# "$T" must not print the token), -o json / -j make every output and every failure JSON,
# sizes are numbers, a bare --size is GiB, pxc's --token-* names, --shared-secret by value
# (warned, never echoed), an optional snapshot name, one shape for role inspect, and a server
# without CAP_SYS_ADMIN refusing to start with what is missing.
set -euo pipefail
VG="$1"
WORK_PREFIX=volguard-newcomer
# shellcheck source=server_lib.sh
source "$(dirname "$0")/server_lib.sh"
start_server
export VOLGUARD_ENDPOINT=$EP
ADMIN=$(cat data/admin.token)
USER_T=$(cat data/user.token)
SECRET=$(cat data/shared.secret)
SIG=$(echo "$USER_T" | cut -d. -f3)

# run RC ARGS...: the exit code must be RC; stdout in out.txt, stderr in err.txt.
run() {
  local want=$1; shift
  local rc=0
  "$VG" "$@" > out.txt 2> err.txt || rc=$?
  [ "$rc" = "$want" ] || fail "volguard $*: exit $rc, want $want: $(cat err.txt)"
}
no_secret_in_output() {
  for s in "$@"; do
    if grep -qF -- "$s" out.txt err.txt; then fail "printed a secret value: $(cat err.txt)"; fi
  done
}
# The token with its last signature character changed: right length, wrong signature.
forge() { local t=$1; if [ "${t: -1}" = A ]; then echo "${t%?}B"; else echo "${t%?}A"; fi; }
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$1" "$2"; }

# --- parse errors name options, never values.
run 2 --tokn "$USER_T" volume list
no_secret_in_output "$SIG" "$USER_T"
grep -q -- "--tokn" err.txt || fail "the mistyped option is not named: $(cat err.txt)"
run 2 --token="$USER_T" volume list --bogus
no_secret_in_output "$SIG"
grep -q -- "--bogus" err.txt || fail "--bogus not named: $(cat err.txt)"
run 2 token generate --shared-secret "$SECRET" --token-name x --shared-secrt "$SECRET"
no_secret_in_output "$SECRET"
run 2 volume list -o "$USER_T"
no_secret_in_output "$SIG"
# ... and with -o json, as one JSON object on stderr.
run 2 -o json --tokn "$USER_T" volume list
no_secret_in_output "$SIG"
[ "$(json_field err.txt code)" = INVALID_ARGUMENT ] && [ "$(json_field err.txt reason)" = usage ] \
  || fail "parse error in JSON: $(cat err.txt)"

# --- -o json / -j: server refusals and local failures are JSON too.
run 5 --token "$USER_T" -j volume inspect no-such-volume
[ "$(json_field err.txt reason)" = volume_not_found ] || fail "-j refusal: $(cat err.txt)"
[ "$(json_field err.txt code)" = NOT_FOUND ] || fail "-j refusal code: $(cat err.txt)"
[ ! -s out.txt ] || fail "a refusal printed on stdout: $(cat out.txt)"
run 2 -o json --token-file /nonexistent volume list
[ "$(json_field err.txt reason)" = usage ] || fail "--token-file error in JSON: $(cat err.txt)"
run 3 -o json --token "$(forge "$USER_T")" volume list
[ "$(json_field err.txt reason)" = signature_invalid ] || fail "bad token in JSON: $(cat err.txt)"
no_secret_in_output "$SIG"

# --- sizes: a bare number is GiB (pxctl); units as written; JSON numbers.
run 0 --token "$USER_T" volume create gib --size 1
run 0 --token "$USER_T" -j volume inspect gib
python3 - out.txt <<'PY' || fail "size_bytes: $(cat out.txt)"
import json, sys
v = json.load(open(sys.argv[1]))["volume"]
assert v["size_bytes"] == 1 << 30 and isinstance(v["size_bytes"], int), v["size_bytes"]
assert isinstance(v["created_at"], str)
PY
run 0 --token "$USER_T" volume create mib --size 64M
run 0 --token "$USER_T" -o json volume list
python3 - out.txt <<'PY' || fail "list sizes: $(cat out.txt)"
import json, sys
sizes = sorted(v["size_bytes"] for v in json.load(open(sys.argv[1]))["volumes"])
assert sizes == [64 << 20, 1 << 30], sizes
PY
run 10 --token "$USER_T" volume create tiny --size 4096B   # bytes need B; OUT_OF_RANGE: below the minimum
grep -q "size_too_small\|minimum" err.txt || fail "4096B: $(cat err.txt)"

# --- snapshot name optional: generated, printed, usable.
run 0 --token "$USER_T" volume snapshot create mib
snap=$(grep -o 'mib-snap-[0-9TZ]*' out.txt) || fail "no generated name: $(cat out.txt)"
run 0 --token "$USER_T" volume snapshot delete "$snap"

# --- pxc's token-generate flags, --shared-secret by value (warned, not echoed).
run 0 token generate --shared-secret="$SECRET" --token-name="Kubernetes" --token-roles=system.user \
  --token-groups=system-user --token-duration=7d --token-subject="" --token-email=k8s@example.com
grep -q "prefer --shared-secret-file" err.txt || fail "no warning for --shared-secret: $(cat err.txt)"
no_secret_in_output "$SECRET"
PXC_T=$(cat out.txt)
run 0 token verify --config data/volguard.yaml "$PXC_T"
python3 - out.txt <<'PY' || fail "pxc token claims: $(cat out.txt)"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["name"] == "Kubernetes" and c["roles"] == ["system.user"] and c["groups"] == ["system-user"], c
assert c["subject"] == "k8s@example.com" and c["email"] == "k8s@example.com", c
PY
run 1 -o json token verify --config data/volguard.yaml "$(forge "$PXC_T")"
[ "$(json_field err.txt reason)" = signature_invalid ] || fail "token verify -o json: $(cat err.txt)"

# --- role inspect: one shape with and without -j; the name as a word or --name, not neither.
cat > r.json <<'J'
{"name": "ro.view", "rules": [{"services": ["volume"], "apis": ["inspect", "enumerate"]}]}
J
run 0 --token "$ADMIN" role create --role-config r.json
run 0 --token "$ADMIN" role inspect ro.view
cp out.txt plain.json
run 0 --token "$ADMIN" -j role inspect --name ro.view
cmp -s plain.json out.txt || fail "role inspect differs with -j: $(cat plain.json) vs $(cat out.txt)"
[ "$(json_field out.txt name)" = ro.view ] || fail "role inspect shape: $(cat out.txt)"
run 2 --token "$ADMIN" role inspect
grep -q "give the role name" err.txt || fail "role inspect without a name: $(cat err.txt)"
run 2 --token "$ADMIN" role inspect ro.view --name ro.view

# --- init and audit verify honour -o json.
run 0 init --data-dir "$work/data2" -o json
[ "$(json_field out.txt config)" = "$work/data2/volguard.yaml" ] || fail "init -o json: $(cat out.txt)"
run 3 audit verify --config data/volguard.yaml -o json   # running server: chain intact, not sealed
[ "$(json_field out.txt result)" = not_sealed ] || fail "audit verify -o json: $(cat out.txt)"
python3 -c 'import json,sys; d=json.load(open("out.txt")); assert isinstance(d["records"], int) and d["records"] > 0, d' \
  || fail "audit verify records: $(cat out.txt)"

# --- no CAP_SYS_ADMIN: the server refuses to start and says what is missing.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
rc=0
setpriv --bounding-set=-sys_admin -- "$VG" server --config data/volguard.yaml > nocap.log 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "server without CAP_SYS_ADMIN: exit $rc: $(cat nocap.log)"
grep -q "insufficient_privileges" nocap.log && grep -q "CAP_SYS_ADMIN" nocap.log \
  || fail "no clear refusal: $(cat nocap.log)"
if grep -q "listening" nocap.log; then fail "started without CAP_SYS_ADMIN: $(cat nocap.log)"; fi
echo "newcomer CLI: parse errors redacted, JSON errors, GiB sizes, pxc flags, privilege check: OK"
