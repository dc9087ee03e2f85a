#!/usr/bin/env bash
# The audit trail end to end: concurrent load, kill -9, every acknowledged change audited, no
# torn line (checked by an independent logfmt parser), `audit verify` seal and tamper
# detection, `audit show` queries.
set -euo pipefail
VG="$1"; NPM_DIR="$2"
cp "$(cd "$(dirname "$0")/../js" && pwd)/logfmt_check.mjs" "$NPM_DIR/logfmt_check.mjs"
work=$(mktemp -d /tmp/volguard-audit-cli-XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GP=$(free_port); RP=$(free_port); EP="127.0.0.1:$GP"
"$VG" init --data-dir "$work/data" --grpc "$EP" --rest "127.0.0.1:$RP" > /dev/null
start_server() {
  "$VG" server --config data/volguard.yaml >> server.log 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RP/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "server did not start"
}
start_server
LOGS=data/log/security
USER_T=$(cat data/user.token)
VIEW_T=$("$VG" token generate --shared-secret-file data/shared.secret --subject viewer --roles system.view)

# Concurrent creates; kill -9 in the middle.
for w in 1 2 3 4; do
  ( for i in $(seq 1 15); do
      out=$("$VG" --endpoint "$EP" --token "$USER_T" volume create "w$w-$i" --size 32M 2>/dev/null) \
        && echo "${out##* }" >> "acked-$w.txt"
    done ) &
done
sleep 2
kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true
wait
cat acked-*.txt > acked.txt 2>/dev/null || touch acked.txt
n_acked=$(wc -l < acked.txt)
[ "$n_acked" -gt 0 ] || fail "no create was acknowledged before the kill"
while read -r id; do
  grep -q "msg=\"Volume $id created (" "$LOGS/volguard-audit.log" || fail "acknowledged create $id has no audit record"
done < acked.txt
node "$NPM_DIR/logfmt_check.mjs" "$LOGS/volguard-audit.log" "$LOGS/volguard-access.log" > parsed.txt \
  || fail "independent logfmt parser refused a line"
echo "after kill -9: $n_acked acknowledged creates all audited; $(cat parsed.txt) parsed by npm logfmt"

set +e; "$VG" audit verify --config data/volguard.yaml > verify.txt; rc=$?; set -e
[ $rc = 3 ] || fail "verify after kill -9 should say NOT SEALED (exit 3), got $rc: $(cat verify.txt)"
grep -q "chain intact" verify.txt || fail "chain must be intact after a crash: $(cat verify.txt)"

# Restart: the start record says the last run was not shut down cleanly.
start_server
grep "msg=\"Server started\"" "$LOGS/volguard-audit.log" | tail -1 | grep -q "previous_shutdown=unclean" \
  || fail "restart after kill -9 must record previous_shutdown=unclean"
set +e; "$VG" --endpoint "$EP" --token "$VIEW_T" volume delete w1-1 >/dev/null 2>&1; set -e
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
"$VG" audit verify --config data/volguard.yaml > verify.txt || fail "verify after a clean stop: $(cat verify.txt)"
grep -q "sealed" verify.txt || fail "clean stop must seal: $(cat verify.txt)"

# Queries.
"$VG" audit show --config data/volguard.yaml --user user --method volume.create -o json > created.json
/usr/bin/python3 -c "import json,sys; r=json.load(open('created.json')); assert len(r)>=$n_acked, len(r); assert all(x['method']=='volume.create' for x in r)" \
  || fail "audit show --user --method"
"$VG" audit show --config data/volguard.yaml --denied --since 1h > denied.txt
grep -q "volume.delete  viewer  Access denied  PERMISSION_DENIED rbac_denied" denied.txt || fail "audit show --denied: $(cat denied.txt)"

# Tampering: each is reported, with the record it starts at.
cp "$LOGS/volguard-audit.log" pristine.log
tamper() { # name command...
  cp pristine.log "$LOGS/volguard-audit.log"
  shift; "$@"
  set +e; "$VG" audit verify --config data/volguard.yaml > verify.txt; rc=$?; set -e
  [ $rc = 1 ] || fail "tampering not detected ($rc): $(cat verify.txt)"
  grep -q "TAMPERED" verify.txt || fail "no TAMPERED line"
}
tamper edit sed -i '3s/volume\.create/volume.delete/' "$LOGS/volguard-audit.log"
grep -q "line 3" verify.txt || fail "edit not located: $(cat verify.txt)"
tamper delete sed -i '4d' "$LOGS/volguard-audit.log"
tamper swap /usr/bin/python3 -c "
p='$LOGS/volguard-audit.log'; l=open(p).readlines(); l[4],l[5]=l[5],l[4]; open(p,'w').writelines(l)"
tamper truncate truncate -s -7 "$LOGS/volguard-audit.log"
grep -q "torn" verify.txt || fail "cut not reported as torn: $(cat verify.txt)"
# The head: cutting the oldest records, emptying the file, forging the first record.
tamper head-cut sed -i '1,3d' "$LOGS/volguard-audit.log"
grep -q "is not the file's header" verify.txt || fail "head cut: $(cat verify.txt)"
tamper emptied truncate -s 0 "$LOGS/volguard-audit.log"
grep -q "empty" verify.txt || fail "emptied file: $(cat verify.txt)"
tamper forged-first sed -i '1s/genesis=true/genesis=false/' "$LOGS/volguard-audit.log"
grep -q "genesis" verify.txt || fail "forged first record: $(cat verify.txt)"
# Deleted outright: the anchor beside the key says a trail existed.
tamper deleted rm "$LOGS/volguard-audit.log"
# Cutting whole records off the end removes the seal: reported as not sealed.
cp pristine.log "$LOGS/volguard-audit.log"
sed -i '$d' "$LOGS/volguard-audit.log"
set +e; "$VG" audit verify --config data/volguard.yaml > verify.txt; rc=$?; set -e
[ $rc = 3 ] || fail "a cut tail must be NOT SEALED (3), got $rc"
echo PASS
