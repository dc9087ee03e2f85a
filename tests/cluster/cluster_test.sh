#!/usr/bin/env bash
# A real cluster on loopback: a 3-member etcd cluster (Debian's etcd, started here) and three
# volguard nodes a, b, c (separate data dirs and ports) sharing it. What a platform team relies
# on when it runs volguard on several machines:
#   - every node requires a client certificate of the cluster CA (mTLS); a node forwards to
#     another with its own node certificate;
#   - a volume made on a is seen and used through b (forwarded to a, audited on both);
#   - a role made on b is enforced on c, and a grant revoked on a is refused on c, within 1 s;
#   - a token revoked on a (from its file) is refused on c within 1 s;
#   - the same name created on a and b at once: exactly one volume, every round;
#   - etcd's leader killed: writes continue; 2 of 3 members down: writes refused with a reason
#     and nothing half-done, decisions refused past the staleness bound; members back: resumes;
#   - a node killed -9 mid-create: on restart etcd and its disk agree; while it is down its
#     volumes are node_unavailable elsewhere;
#   - a single SQLite node migrated into the cluster keeps every volume, ACL, role, snapshot;
#   - `audit verify` over every node's chain.
set -euo pipefail
VG="$1"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=etcd_lib.sh
source "$here/etcd_lib.sh"

work=$(mktemp -d /tmp/volguard-cluster-XXXXXX)
declare -A pid gport rport
cleanup() {
  for n in "${!pid[@]}"; do kill -9 "${pid[$n]}" 2>/dev/null || true; done
  etcd_cluster_stop "$work/etcd" 2>/dev/null || true
  for m in $(awk '{print $2}' /proc/mounts | grep "^$work" || true); do umount -l "$m" || true; done
  for f in "$work"/*/data/volumes/*.img; do
    [ -e "$f" ] && losetup -j "$f" | cut -d: -f1 | xargs -r losetup -d || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() {
  echo "FAIL: $*" >&2
  for n in a b c d; do [ -f "$n.log" ] && { echo "--- $n.log" >&2; tail -15 "$n.log" >&2; }; done
  exit 1
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%3N; }
# claimed NAME: whether a volume name is claimed in etcd (etcdctl retried: a member that just
# came back may refuse a call; an etcdctl failure must not read as "absent").
claimed() {
  local out
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if out=$(ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" get --prefix "/volguard-test/names/volume/$1" 2>etcdctl.err); then
      [ -n "$out" ]; return
    fi
    sleep 0.3
  done
  fail "etcdctl get failed: $(cat etcdctl.err)"
}

etcd_cluster_start "$work/etcd" 3
[ -n "${ETCD_ENDPOINTS:-}" ] || fail "etcd cluster did not start"
endpoints_yaml="[$(echo "$ETCD_ENDPOINTS" | sed 's/,/, /g')]"

# Node a's init makes the shared issuer secret and the admin token every node accepts.
"$VG" init --data-dir "$work/a/data" > init.out
SECRET="$work/a/data/shared.secret"
ADMIN=$(cat "$work/a/data/admin.token")
tok() {  # tok SUBJECT ROLES [GROUPS]
  "$VG" token generate --issuer volguard.local --shared-secret-file "$SECRET" --subject "$1" \
    --roles "$2" ${3:+--groups "$3"} --duration 1h
}
ALICE=$(tok alice system.user)
BOB=$(tok bob system.user)

# The cluster's PKI, made here: a CA, a certificate per node (its server certificate and, for
# forwards, its client certificate) and one for the CLI. Tokens still decide who a caller is.
pki="$work/pki"; mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" -out "$pki/ca.pem" \
  -days 2 -subj /CN=volguard-cluster-ca 2>/dev/null
cert() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" -out "$pki/$1.csr" \
    -subj "/CN=$1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/$1.pem" \
    -days 2 -copy_extensions copy 2>/dev/null
  chmod 600 "$pki/$1.key"
}
for n in node-a node-b node-c node-d cli; do cert "$n"; done
declare -A tls  # nodes serving mTLS

write_config() {  # write_config NODE [store-yaml]
  local n="$1"
  gport[$n]=$(free_port); rport[$n]=$(free_port)
  mkdir -p "$work/$n/data"
  tls[$n]=1
  cat > "$n.yaml" <<EOF
data_dir: $work/$n/data
api:
  grpc: 127.0.0.1:${gport[$n]}
  rest: 127.0.0.1:${rport[$n]}
  tls:
    cert_file: $pki/node-$n.pem
    key_file: $pki/node-$n.key
    client_ca: $pki/ca.pem
security:
  enabled: true
  guest_access: false
  issuers:
    - issuer: volguard.local
      shared_secret_file: $SECRET
  x509:
    issuer: cluster-x509
    principal: cn
    mappings:
      - match: cli
        roles: [system.user]
node:
  name: $n
store:
  etcd:
    endpoints: $endpoints_yaml
    prefix: /volguard-test
    stale_after: 2s
    node_ttl: 2s
EOF
}
start_node() {  # start_node NODE [CRASH_AT]
  local n="$1"
  VOLGUARD_CRASH_AT="${2:-}" "$VG" server --config "$n.yaml" >> "$n.log" 2>&1 &
  pid[$n]=$!
  for _ in $(seq 150); do
    healthy "$n" && return 0
    kill -0 "${pid[$n]}" 2>/dev/null || fail "node $n exited at start"
    sleep 0.1
  done
  fail "node $n did not start"
}
stop_node() { kill -TERM "${pid[$1]}" 2>/dev/null || true; wait "${pid[$1]}" 2>/dev/null || true; unset "pid[$1]"; }
# on NODE TOKEN ARGS...: the CLI against that node (with the CLI's certificate where mTLS).
cli_tls() { [ -n "${tls[$1]:-}" ] && echo "--tls-ca $pki/ca.pem --tls-cert $pki/cli.pem --tls-key $pki/cli.key" || true; }
# shellcheck disable=SC2046
on() { local n="$1" t="$2"; shift 2; "$VG" --endpoint "127.0.0.1:${gport[$n]}" $(cli_tls "$n") --token "$t" "$@"; }
healthy() {
  if [ -n "${tls[$1]:-}" ]; then
    curl -sf --cacert "$pki/ca.pem" --cert "$pki/cli.pem" --key "$pki/cli.key" "https://127.0.0.1:${rport[$1]}/healthz"
  else
    curl -sf "http://127.0.0.1:${rport[$1]}/healthz"
  fi >/dev/null 2>&1
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# within MS CMD...: CMD succeeds within MS milliseconds (polled); prints the time it took.
within() {
  local limit="$1"; shift
  local t0; t0=$(ms)
  while :; do
    if "$@" >/dev/null 2>&1; then echo $(( $(ms) - t0 )); return 0; fi
    [ $(( $(ms) - t0 )) -gt "$limit" ] && return 1
    sleep 0.05
  done
}

for n in a b c; do write_config "$n"; done
# Node a keeps its init config's data dir; its yaml above replaces the one init wrote.
for n in a b c; do start_node "$n"; done

echo "== nodes register under a lease and see each other"
on a "$ADMIN" node list -o json > nodes.json
[ "$(json 'sorted(n["name"] for n in d["nodes"] if n.get("alive"))' < nodes.json)" = "['a', 'b', 'c']" ] ||
  fail "node list: $(cat nodes.json)"

echo "== every node requires a client certificate of the cluster CA"
for n in a b c; do
  set +e
  "$VG" --endpoint "127.0.0.1:${gport[$n]}" --tls-ca "$pki/ca.pem" --token "$ALICE" volume list > nocert.out 2>&1; rc1=$?
  "$VG" --endpoint "127.0.0.1:${gport[$n]}" --token "$ALICE" volume list > plain.out 2>&1; rc2=$?
  curl -sf --cacert "$pki/ca.pem" "https://127.0.0.1:${rport[$n]}/healthz" > /dev/null 2>&1; rc3=$?
  set -e
  [ "$rc1" != 0 ] && [ "$rc2" != 0 ] && [ "$rc3" != 0 ] || fail "node $n served a client without a certificate ($rc1 $rc2 $rc3)"
done

echo "== a certificate identity is served by the node it reaches, never forwarded"
CERT=(--tls-ca "$pki/ca.pem" --tls-cert "$pki/cli.pem" --tls-key "$pki/cli.key")
"$VG" --endpoint "127.0.0.1:${gport[a]}" "${CERT[@]}" volume create by-cert --size 16M > cert.out 2>&1 ||
  fail "create with a certificate identity on a: $(cat cert.out)"
set +e; "$VG" --endpoint "127.0.0.1:${gport[b]}" "${CERT[@]}" volume inspect by-cert > fwd.out 2>&1; rc=$?; set -e
[ "$rc" != 0 ] && grep -q certificate_not_forwardable fwd.out || fail "a certificate identity was forwarded: $(cat fwd.out)"
"$VG" --endpoint "127.0.0.1:${gport[a]}" "${CERT[@]}" volume inspect by-cert -o json | grep -q '"owner": "cluster-x509/cli"' ||
  fail "the volume is not the certificate identity's"

echo "== created on a, inspected and mounted through b (forwarded over mTLS, audited on both)"
export VOLGUARD_SESSION="$work/alice.session"
on a "$ALICE" volume create v1 --size 64M --collaborator bob:r > /dev/null || fail "create on a"
on b "$ALICE" volume inspect v1 -o json > v1.json || fail "inspect via b (read-your-writes)"
[ "$(json 'd["volume"]["home_node"]' < v1.json)" = a ] || fail "home of v1: $(cat v1.json)"
mkdir -p "$work/mnt1"
on b "$ALICE" volume mount v1 --path "$work/mnt1" > /dev/null || fail "mount via b"
grep -q " $work/mnt1 " /proc/mounts || fail "v1 not mounted"
on c "$ALICE" volume unmount v1 > /dev/null || fail "unmount via c"
on b "$ALICE" volume update v1 --label tier=gold > /dev/null || fail "update via b"
unset VOLGUARD_SESSION
grep 'method=mountattach.mount' b/data/log/security/volguard-audit.log | grep -q 'forwarded_to=a' ||
  fail "b's audit trail does not record the forwarded mount"
grep 'method=mountattach.mount' a/data/log/security/volguard-audit.log | grep 'forwarded_by=b' | grep -q 'outcome=done' ||
  fail "a's audit trail does not record the mount forwarded by b"
grep 'method=volume.inspect' b/data/log/security/volguard-access.log | grep -q 'forwarded_to=a' || fail "b's access log: inspect"
grep 'method=volume.inspect' a/data/log/security/volguard-access.log | grep 'forwarded_by=b' | grep -q 'node=a' ||
  fail "a's access log: inspect forwarded by b"
# The home node decides again: a token the forwarding node would accept but the home refuses is
# refused there too (a forged "forwarded-by" gives nothing either: it only names the claimant).
set +e; on b "$BOB" volume update v1 --label x=y > deny.out 2>&1; rc=$?; set -e
[ "$rc" != 0 ] && grep -q acl_insufficient deny.out || fail "bob (read) updated v1 via b: $(cat deny.out)"

echo "== a role made on b is enforced on c within 1 s"
cat > ops.json <<'EOF'
{"name": "ops.lister", "rules": [{"services": ["volume"], "apis": ["enumerate", "inspect"]}]}
EOF
OPS=$(tok olga ops.lister)
set +e; on c "$OPS" volume list > pre.out 2>&1; rc=$?; set -e
[ "$rc" != 0 ] || fail "an unknown role was allowed before it existed"
on b "$ADMIN" role create --role-config ops.json > /dev/null || fail "role create on b"
took=$(within 1000 on c "$OPS" volume list) || fail "role made on b not enforced on c within 1 s"
echo "   role visible on c after ${took} ms"

echo "== a grant revoked on a is refused on c within 1 s (c decides from its own catalog)"
on c "$BOB" volume list -o json | grep -q '"v1"' || fail "bob cannot see v1 on c before the revoke"
on a "$ALICE" volume access remove v1 --collaborator bob > /dev/null || fail "revoke on a"
gone() { ! on c "$BOB" volume list -o json | grep -q '"v1"'; }
took=$(within 1000 gone) || fail "revoked grant still honoured on c after 1 s"
echo "   revoke seen on c after ${took} ms"

echo "== a token revoked on a (read from its file) is refused on c within 1 s; never printed"
LEAK=$(tok lena system.user)
printf '%s\n' "$LEAK" > leaked.token
on c "$LEAK" volume list > /dev/null || fail "the token did not work before it was revoked"
on a "$ADMIN" token revoke --file leaked.token > revoke.out 2>&1 || fail "token revoke on a: $(cat revoke.out)"
! grep -qF "$LEAK" revoke.out || fail "token revoke printed the token"
revoked() { local out; out=$(on c "$LEAK" volume list 2>&1) && return 1; grep -q token_revoked <<< "$out"; }
took=$(within 1000 revoked) || fail "revoked token still accepted on c after 1 s: $(on c "$LEAK" volume list 2>&1 | tail -2)"
echo "   revocation enforced on c after ${took} ms"
on b "$ADMIN" token revocations | grep -q "lena\|jti" || fail "token revocations on b: $(on b "$ADMIN" token revocations 2>&1)"

echo "== the same name on a and b at once: exactly one volume each round"
rounds=12
for i in $(seq "$rounds"); do
  on a "$ALICE" volume create "race$i" --size 16M > ra.out 2>&1 & p1=$!
  on b "$ALICE" volume create "race$i" --size 16M > rb.out 2>&1 & p2=$!
  r1=0; r2=0; wait $p1 || r1=$?; wait $p2 || r2=$?
  wins=$(( (r1 == 0) + (r2 == 0) ))
  [ "$wins" = 1 ] || fail "round $i: $wins creates won ($(cat ra.out rb.out))"
  grep -q name_taken ra.out rb.out || fail "round $i: the loser's reason: $(cat ra.out rb.out)"
done
on c "$ALICE" volume list -o json > races.json
count=$(json 'len([v for v in d["volumes"] if v["name"].startswith("race")])' < races.json)
[ "$count" = "$rounds" ] || fail "$count race volumes listed, expected $rounds"
for i in $(seq "$rounds"); do on c "$ALICE" volume delete "race$i" > /dev/null || fail "delete race$i"; done

echo "== etcd leader killed: writes continue after the election"
leader=$(etcd_leader "$work/etcd")
etcd_member_kill "$work/etcd" "$leader"
took=$(within 15000 on a "$ALICE" volume create after-election --size 16M) || fail "no write after the leader was killed"
echo "   write accepted ${took} ms after the leader died"
etcd_member_start "$work/etcd" "$leader"

echo "== 2 of 3 etcd members down: writes refused, nothing half-done; decisions refused past the bound"
within 15000 on a "$ALICE" volume inspect after-election > /dev/null || fail "cluster not healthy again"
down=()
for i in 0 1 2; do [ "${#down[@]}" -lt 2 ] && [ "$i" != "$(etcd_leader "$work/etcd")" ] && down+=("$i"); done
[ "${#down[@]}" = 2 ] || down=(0 1)
for i in "${down[@]}"; do etcd_member_kill "$work/etcd" "$i"; done
set +e; on a "$ALICE" volume create no-quorum --size 16M > nq.out 2>&1; rc=$?; set -e
[ "$rc" != 0 ] || fail "a write was accepted without a quorum"
grep -Eq 'store_unavailable|metadata_stale' nq.out || fail "no clear reason without a quorum: $(cat nq.out)"
stale() { local out; out=$(on b "$ALICE" volume inspect v1 2>&1) || true; grep -q metadata_stale <<< "$out"; }
took=$(within 8000 stale) || fail "reads were not refused as stale without a quorum: $(on b "$ALICE" volume inspect v1 2>&1 | tail -3)"
echo "   decisions refused (metadata_stale) ${took} ms after the refused write"
for i in "${down[@]}"; do etcd_member_start "$work/etcd" "$i"; done
took=$(within 20000 on a "$ALICE" volume create quorum-back --size 16M) || fail "service did not resume"
echo "   writes resumed ${took} ms after the members came back"
within 5000 on b "$ALICE" volume inspect quorum-back > /dev/null || fail "b did not resume"
# Nothing half-done: no record and no image of the refused create, on any node.
on c "$ALICE" volume list -o json | grep -q '"no-quorum"' && fail "the refused create left a record"
# etcd may still commit the refused create's first write once its quorum is back (the proposal
# outlived the timeout): its node removes such an abandoned "creating" record by itself.
unclaimed() { ! claimed no-quorum; }
within 5000 unclaimed > /dev/null || fail "the refused create left its name claimed in etcd"
on b "$ALICE" volume create no-quorum --size 16M > /dev/null || fail "the refused create's name is not free again"

echo "== a node killed -9 mid-create: etcd and its disk agree after restart; its volumes are unavailable meanwhile"
on b "$ALICE" volume create on-b --size 16M > /dev/null || fail "create on b"
stop_node b
start_node b "on_disk:volume.make"
set +e; on b "$ALICE" volume create half --size 16M > half.out 2>&1; set -e
wait "${pid[b]}" 2>/dev/null || true
kill -0 "${pid[b]}" 2>/dev/null && fail "node b did not die mid-create"
unset "pid[b]"
na() { local out; out=$(on a "$ALICE" volume inspect on-b 2>&1) || true; grep -q 'node_unavailable.*node b' <<< "$out"; }
took=$(within 8000 na) || fail "on-b not reported node_unavailable while b is down: $(on a "$ALICE" volume inspect on-b 2>&1)"
echo "   b's volume node_unavailable ${took} ms after b died"
claimed half || fail "the crash did not leave the half-made record (the test did not test anything): $(cat half.out); names: $(ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" get --prefix /volguard-test/names --keys-only 2>&1 | tr '\n' ' ')"
start_node b
claimed half && fail "recovery left the half-made volume's record in etcd"
ids=$(on b "$ADMIN" volume list -o json | json '" ".join(v["id"] for v in d["volumes"] if v["home_node"]=="b")')
for f in b/data/volumes/*.img; do
  [ -e "$f" ] || continue
  id=$(basename "$f" .img)
  echo " $ids " | grep -q " $id " || fail "image $f on b's disk has no record"
done
within 5000 on a "$ALICE" volume inspect on-b > /dev/null || fail "on-b not served again after b restarted"

echo "== a single SQLite node migrated into the cluster keeps volumes, ACLs, roles, snapshots"
"$VG" init --data-dir "$work/d/data" > /dev/null
gport[d]=$(free_port); rport[d]=$(free_port)
sed -i "s#^  grpc: .*#  grpc: 127.0.0.1:${gport[d]}#; s#^  rest: .*#  rest: 127.0.0.1:${rport[d]}#; s#shared_secret_file: .*#shared_secret_file: $SECRET#" d/data/volguard.yaml
cp d/data/volguard.yaml d-single.yaml
start_node_single() {
  "$VG" server --config d-single.yaml >> d.log 2>&1 &
  pid[d]=$!
  for _ in $(seq 100); do healthy d && return 0; sleep 0.1; done
  fail "single node d did not start"
}
start_node_single
on d "$ALICE" volume create legacy --size 32M --collaborator bob:w --group eng:r > /dev/null || fail "create on d"
on d "$ALICE" volume snapshot create legacy --name legacy-snap > /dev/null || fail "snapshot on d"
sed 's/ops.lister/ops.legacy/' ops.json > legacy-role.json
on d "$ADMIN" role create --role-config legacy-role.json > /dev/null || fail "role on d"
on d "$ALICE" volume inspect legacy -o json > legacy-before.json
GONE=$(tok gone system.user)
printf '%s\n' "$GONE" > gone.token
on d "$ADMIN" token revoke --file gone.token > /dev/null || fail "token revoke on single node d"
stop_node d
write_config d
sed -i "s#^data_dir: .*#data_dir: $work/d/data#" d.yaml
"$VG" store migrate --from "$work/d/data/volguard.db" --to d.yaml > migrate.out || fail "migrate: $(cat migrate.out)"
grep -q "volumes   : 1 copied" migrate.out || fail "migrate report: $(cat migrate.out)"
start_node d
on a "$ALICE" volume inspect legacy -o json > legacy-after.json || fail "migrated volume not visible on a"
set +e; on a "$GONE" volume list > gone.out 2>&1; set -e
grep -q token_revoked gone.out || fail "a token revoked on the single node works in the cluster: $(cat gone.out)"
/usr/bin/python3 - legacy-before.json legacy-after.json <<'PY' || fail "migration changed the volume"
import json, sys
b, a = (json.load(open(f))["volume"] for f in sys.argv[1:])
for k in ("id", "name", "size_bytes", "ownership", "labels", "fs"):
    assert b.get(k) == a.get(k), (k, b.get(k), a.get(k))
assert a["home_node"] == "d", a["home_node"]
PY
on a "$ALICE" volume snapshot list legacy -o json | grep -q legacy-snap || fail "migrated snapshot missing"
on a "$ADMIN" role inspect ops.legacy > /dev/null || fail "migrated role missing"
on c "$BOB" volume update legacy --label by=bob > /dev/null || fail "migrated ACL (bob:w) not honoured"
"$VG" store migrate --from "$work/d/data/volguard.db" --to d.yaml > migrate2.out || fail "second migrate"
grep -q "volumes   : 0 copied, 1 already there" migrate2.out || fail "re-run not idempotent: $(cat migrate2.out)"

echo "== audit verify over every node's chain"
for n in a b c d; do stop_node "$n"; done
"$VG" audit verify --config a.yaml --config b.yaml --config c.yaml --config d.yaml > verify.out ||
  fail "audit verify: $(cat verify.out)"
cat verify.out
for n in a b c d; do grep -q "^node $n " verify.out || fail "verify did not cover node $n"; done
echo "PASS"
