#!/usr/bin/env bash
# GET /metrics of a real server as a platform team's Prometheus sees it: Debian's
# `promtool check metrics` finds no problem; build info, process metrics, counters at zero for
# methods and reasons never seen, and the gauges (audit trail writable, also on a full disk;
# store up, SQLite and etcd, also with etcd gone; OIDC key age: one live provider, one down) hold
# sane values. Then deploy/prometheus/ as its README says: the metrics-only role and token can
# scrape and nothing else, and `promtool check config` accepts prometheus.yml with that token file.
set -euo pipefail
VG="$1"
DEPLOY="$2"  # deploy/prometheus
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK_PREFIX=volguard-metrics
# shellcheck source=server_lib.sh
source "$HERE/server_lib.sh"
command -v promtool >/dev/null || fail "promtool not found (Debian package prometheus: scripts/install-deps.sh)"
# shellcheck source=../cluster/etcd_lib.sh
source "$HERE/../cluster/etcd_lib.sh"
provider_pid=""; etcd_server_pid=""
trap '[ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null
      [ -n "$etcd_server_pid" ] && kill -9 "$etcd_server_pid" 2>/dev/null
      [ -d "$work/etcd" ] && etcd_cluster_stop "$work/etcd"
      cleanup' EXIT

# An OIDC provider on loopback (discovery + a JWKS with one P-256 key), and an issuer whose
# provider is down: their key ages are a number of seconds and +Inf.
openssl ecparam -name prime256v1 -genkey -noout -out idp.pem
openssl ec -in idp.pem -pubout -outform DER 2>/dev/null | tail -c 64 > idp.xy  # x || y
/usr/bin/python3 - idp.xy provider.port <<'PY' > provider.log 2>&1 &
import base64, http.server, json, sys
xy = open(sys.argv[1], "rb").read()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
jwk = {"kty": "EC", "crv": "P-256", "x": b64(xy[:32]), "y": b64(xy[32:]), "kid": "k1", "use": "sig"}
class Provider(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        iss = "http://127.0.0.1:%d" % self.server.server_port
        body = {"/.well-known/openid-configuration": {"issuer": iss, "jwks_uri": iss + "/jwks"},
                "/jwks": {"keys": [jwk]}}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Provider)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_port))
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
PY
provider_pid=$!
for _ in $(seq 100); do [ -s provider.port ] && break; sleep 0.1; done
[ -s provider.port ] || fail "the OIDC provider did not start"
LIVE_ISS="http://127.0.0.1:$(cat provider.port)"
DOWN_ISS="http://127.0.0.1:$(free_port)"
printf '    - issuer: "%s"\n      oidc: {client_id: urn:volguard}\n' "$LIVE_ISS" "$DOWN_ISS" > oidc-issuers.yaml
sed -i '/shared_secret_file:/r oidc-issuers.yaml' data/volguard.yaml

# The audit trail on a small filesystem of its own, to fill it (as root; skipped otherwise).
audit_fs=0
if mkdir -p data/log && mount -t tmpfs -o size=2m,mode=0700 tmpfs data/log 2>/dev/null; then
  audit_fs=1
fi
start_server

ADMIN=$(cat data/admin.token)
REST="http://127.0.0.1:$RP"
scrape() { # token file-to-write: the page, and promtool's verdict on it
  curl -sf -H "Authorization: Bearer $1" "$REST/metrics" > "$2" || fail "GET /metrics failed"
  set +e; promtool check metrics < "$2" > "$2.lint" 2>&1; local rc=$?; set -e
  [ "$rc" = 0 ] && [ ! -s "$2.lint" ] || fail "promtool check metrics (exit $rc): $(cat "$2.lint")"
}
# value FILE SERIES: the sample of exactly that series (name and labels as rendered).
value() { awk -v s="$2" '$1 == s { print $2; found = 1 } END { exit !found }' "$1" \
  || fail "no series $2 in $1"; }

# Traffic the counters must show: an admin call, a malformed token.
curl -sf -X POST -H "Content-Type: application/json" -H "Authorization: Bearer $ADMIN" "$REST/v1/identity/whoami" -d '{}' >/dev/null
curl -s -o /dev/null -X POST -H "Content-Type: application/json" -H "Authorization: Bearer garbage" "$REST/v1/identity/whoami" -d '{}'
# The key source fetches in the background: wait until the live issuer's keys are in.
for _ in $(seq 100); do
  scrape "$ADMIN" m.txt
  [ "$(value m.txt "volguard_oidc_keys_age_seconds{issuer=\"$LIVE_ISS\"}")" != "+Inf" ] && break
  sleep 0.1
done
echo "ok: promtool check metrics finds no problem ($(wc -l < m.txt) lines)"

version=$("$VG" --version | awk '{print $2}')
build=$(grep '^volguard_build_info{' m.txt) || fail "no volguard_build_info"
[[ "$build" == "volguard_build_info{version=\"$version\","*"} 1" ]] || fail "build info: $build (binary $version)"
echo "$build" | grep -q 'grpc_version="[0-9]' || fail "build info gRPC version: $build"
echo "$build" | grep -q 'openssl_version="3\.' || fail "build info OpenSSL version: $build"

/usr/bin/python3 - m.txt "$LIVE_ISS" "$DOWN_ISS" <<'PY' || fail "metric values (above)"
import math, re, sys, time
text, live, down = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
samples = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
def v(series):
    assert series in samples, "missing " + series
    return samples[series]
now = time.time()
assert v("process_open_fds") > 0, v("process_open_fds")
assert v("process_max_fds") >= v("process_open_fds")
assert v("process_resident_memory_bytes") > 1 << 20, v("process_resident_memory_bytes")
assert v("process_virtual_memory_bytes") >= v("process_resident_memory_bytes")
assert v("process_cpu_seconds_total") > 0
assert now - 3600 < v("process_start_time_seconds") <= now + 1, (v("process_start_time_seconds"), now)
# A method never called: every code, its histogram and its denials at zero.
codes = [s for s in samples if s.startswith('volguard_requests_total{method="volume.snapshotdelete",')]
assert len(codes) == 17 and all(samples[s] == 0 for s in codes), codes
assert v('volguard_requests_total{method="volume.snapshotdelete",code="OK"}') == 0
assert v('volguard_request_duration_seconds_count{method="volume.snapshotdelete"}') == 0
assert v('volguard_request_duration_seconds_bucket{method="volume.snapshotdelete",le="+Inf"}') == 0
assert v('volguard_authorization_denials_total{method="volume.delete"}') == 0
# Reasons never seen, at zero; the ones seen, counted.
assert v('volguard_authentication_failures_total{reason="token_expired"}') == 0
assert v('volguard_authentication_failures_total{reason="token_revoked"}') == 0
assert v('volguard_authentication_failures_total{reason="certificate_revoked"}') == 0
assert v('volguard_authentication_failures_total{reason="token_malformed"}') == 1
assert v('volguard_requests_total{method="identity.whoami",code="OK"}') == 1
assert v('volguard_requests_total{method="identity.whoami",code="UNAUTHENTICATED"}') == 1
# Gauges.
assert v("volguard_audit_writable") == 1
assert v('volguard_store_up{backend="sqlite"}') == 1
age = v('volguard_oidc_keys_age_seconds{issuer="%s"}' % live)
assert 0 <= age < 60, age
assert math.isinf(v('volguard_oidc_keys_age_seconds{issuer="%s"}' % down))
for family in ["volguard_build_info", "volguard_audit_writable", "volguard_store_up",
               "volguard_oidc_keys_age_seconds", "process_open_fds", "process_start_time_seconds"]:
    assert re.search("^# HELP %s .+\n# TYPE %s (gauge|counter)$" % (family, family), text, re.M), family
PY
echo "ok: build info ($version), process metrics, zero counters, audit/store/OIDC gauges"

# The audit trail's filesystem full: not writable, at once (no change needs to fail first);
# room again: writable.
if [ "$audit_fs" = 1 ]; then
  dd if=/dev/zero of=data/log/fill bs=64k 2>/dev/null || true
  scrape "$ADMIN" full.txt
  [ "$(value full.txt volguard_audit_writable)" = 0 ] || fail "audit trail full but writable"
  rm data/log/fill
  scrape "$ADMIN" room.txt
  [ "$(value room.txt volguard_audit_writable)" = 1 ] || fail "audit trail has room again but not writable"
  echo "ok: volguard_audit_writable follows the audit trail's filesystem (full: 0, room: 1)"
else
  echo "skip: volguard_audit_writable on a full filesystem (needs root to mount a tmpfs)"
fi

# An etcd-backed server: volguard_store_up{backend="etcd"} is 1 while etcd confirms its
# catalog, 0 once etcd is gone for longer than stale_after. Scraped without a token here: a node
# whose catalog is stale refuses every decision (UNAVAILABLE metadata_stale), metrics.inspect's
# too, so a token scrape of that node fails instead (Prometheus: up == 0).
etcd_cluster_start "$work/etcd" 1 >/dev/null
ERP=$(free_port)
cat > etcd.yaml <<YAML
data_dir: $work/edata
api: {grpc: "127.0.0.1:$(free_port)", rest: "127.0.0.1:$ERP"}
security:
  issuers:
    - issuer: volguard.local
      shared_secret_file: $work/data/shared.secret
metrics: {require_token: false}
node: {name: metrics-etcd}
store:
  etcd: {endpoints: [$ETCD_ENDPOINTS], prefix: /volguard-metrics-test, stale_after: 1s}
YAML
"$VG" server --config etcd.yaml >> etcd-server.log 2>&1 &
etcd_server_pid=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$ERP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
escrape() { curl -sf "http://127.0.0.1:$ERP/metrics" > "$1" || fail "etcd server: GET /metrics: $(tail -5 etcd-server.log)"; }
escrape etcd-up.txt
promtool check metrics < etcd-up.txt > etcd-up.lint 2>&1 && [ ! -s etcd-up.lint ] || fail "promtool (etcd): $(cat etcd-up.lint)"
[ "$(value etcd-up.txt 'volguard_store_up{backend="etcd"}')" = 1 ] || fail "etcd store up but volguard_store_up is not 1"
etcd_member_kill "$work/etcd" 0
stale=""
for _ in $(seq 100); do
  escrape etcd-down.txt
  [ "$(value etcd-down.txt 'volguard_store_up{backend="etcd"}')" = 0 ] && { stale=1; break; }
  sleep 0.1
done
[ -n "$stale" ] || fail "etcd gone for 10 s but volguard_store_up{backend=\"etcd\"} is still 1"
echo "ok: volguard_store_up{backend=\"etcd\"} follows etcd (up: 1, gone past stale_after: 0)"
kill -9 "$etcd_server_pid"; wait "$etcd_server_pid" 2>/dev/null || true; etcd_server_pid=""

# deploy/prometheus/README.md's commands as written, from a directory laid out like the clone
# (./build/volguard, ./data of `volguard init`, a copy of deploy/prometheus/ that the token is
# written into): the role, a year-long token with only that role, promtool check config.
mkdir -p build deploy
ln -s "$VG" build/volguard
cp -r "$DEPLOY" deploy/prometheus
python3 "$HERE/../readme/extract_blocks.py" "$DEPLOY/README.md" > recipe.sh 2> recipe.blocks \
  || fail "extract: $(cat recipe.blocks)"
[ "$(awk '{print $1}' recipe.blocks)" -ge 1 ] || fail "no sh block in $DEPLOY/README.md"
VOLGUARD_ENDPOINT=$EP bash -euo pipefail recipe.sh > recipe.out 2>&1 \
  || fail "deploy/prometheus/README.md as written: $(tail -5 recipe.out)"
METRICS_T=$(cat deploy/prometheus/volguard-metrics.token)
"$VG" token verify --config data/volguard.yaml "$METRICS_T" | /usr/bin/python3 -c '
import datetime, json, sys
o = json.load(sys.stdin)
assert o["roles"] == ["metrics.reader"], o
left = datetime.datetime.strptime(o["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
    tzinfo=datetime.timezone.utc) - datetime.datetime.now(datetime.timezone.utc)
assert left.days >= 364, left' || fail "the recipe's token is not a year-long metrics.reader token"
scrape "$METRICS_T" reader.txt
grep -q '^volguard_build_info{' reader.txt || fail "metrics token scrape: $(head -3 reader.txt)"
set +e; out=$("$VG" --endpoint "$EP" --token "$METRICS_T" volume list 2>&1); rc=$?; set -e
[ "$rc" = 4 ] || fail "a metrics-only token listed volumes (exit $rc): $out"
code=$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Content-Type: application/json" \
  -H "Authorization: Bearer $METRICS_T" "$REST/v1/volume/create" -d '{"name":"nope","size":"32M"}')
[ "$code" = 403 ] || fail "a metrics-only token creating a volume: HTTP $code"
echo "ok: deploy/prometheus/README.md runs as written (promtool check config passes); its token"
echo "    scrapes /metrics and is refused volume calls (CLI exit 4, HTTP 403)"
echo "PASS"
