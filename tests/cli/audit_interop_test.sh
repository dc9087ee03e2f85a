#!/usr/bin/env bash
# Logs that plug in (issue 16): a real server writes access and audit lines holding hostile
# values (usernames, groups, labels with spaces, quotes, '=', backslashes, newlines, tabs,
# non-ASCII, a group "eng,admin" beside "ops"), rotated by a tiny audit.max_size; then parsers
# that share no code with volguard read them back:
#  - logfmt: go-logfmt's Decoder (Debian golang-github-go-logfmt-logfmt-dev, built offline here
#    as tests/go/logfmt_oracle), compared field by field with what was sent, and with what
#    volguard's own parser (`audit show`) reads;
#  - audit.format: json: python3's json, values typed (seq a number, groups an array, ...);
#  - deploy/fluent-bit/: its parsers' Time_Key/Time_Format applied to every line (the oracle's
#    strptime, %L included) and its tail inputs' Path globs against the live and rotated files.
# usage: audit_interop_test.sh VOLGUARD_BINARY [CRASH_POINTS(0|1)]
set -euo pipefail
VG="$1"; CRASH_POINTS="${2:-0}"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$SRC/tests/cli"
WORK_PREFIX=volguard-audit-interop
# shellcheck source=server_lib.sh
source "$HERE/server_lib.sh"
LOGS=data/log/security
PY=/usr/bin/python3

# The oracle, built offline: GOPATH mode finds go-logfmt where Debian installs it; no network.
command -v go >/dev/null || fail "go is missing: scripts/install-deps.sh installs golang-go"
[ -d /usr/share/gocode/src/github.com/go-logfmt/logfmt ] \
  || fail "go-logfmt is missing: scripts/install-deps.sh installs golang-github-go-logfmt-logfmt-dev"
( cd "$SRC/tests/go/logfmt_oracle" &&
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" GOENV=off GOPROXY=off GOFLAGS= \
    go build -o "$work/oracle" . ) > go-build.log 2>&1 || { cat go-build.log >&2; fail "go build of the oracle"; }
ORACLE="$work/oracle"

# Tiny files: both logs rotate several times; keep 2 rotated files of each.
cat >> data/volguard.yaml <<'EOF'
audit:
  format: logfmt
  max_size: 4K
  keep: 2
EOF

all_files() { # the rotated files, oldest first, then the live one
  local base
  for base in volguard-audit.log volguard-access.log; do
    ls "$LOGS/$base".* 2>/dev/null | sort -t. -k3,3nr
    echo "$LOGS/$base"
  done
}

# --- logfmt -------------------------------------------------------------------------------
start_server
"$PY" "$HERE/audit_interop.py" drive "$VG" "$EP" data/shared.secret lf || fail "driving the server"
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
"$VG" audit verify --config data/volguard.yaml > verify.txt || fail "audit verify (logfmt): $(cat verify.txt)"

# Rotated names and modes: <name>.1 (newest) .. <name>.<keep>; 0600 like the live file, dir 0700.
[ "$(stat -c %a "$LOGS")" = 700 ] || fail "log dir mode $(stat -c %a "$LOGS")"
for base in volguard-audit.log volguard-access.log; do
  [ -f "$LOGS/$base.1" ] || fail "$base did not rotate: $(ls "$LOGS")"
  [ ! -e "$LOGS/$base.3" ] || fail "$base.3 kept beyond audit.keep=2"
done
for f in $(all_files); do
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f"), not 0600"
done
# Retention deleted the oldest access file: fewer records kept than the 36 access calls made.
[ "$(cat "$LOGS"/volguard-access.log* | wc -l)" -lt 36 ] || fail "the access log was not cut by audit.keep"
ls "$LOGS" | grep -Evx 'volguard-(audit|access)\.log(\.[12])?' && fail "unexpected file in $LOGS"

mapfile -t files < <(all_files)
"$ORACLE" decode "${files[@]}" > decoded.jsonl || fail "go-logfmt refused a line"
for f in "${files[@]}"; do  # one record per line, no line lost or added
  [ "$(grep -c "\"file\":\"$f\"" decoded.jsonl)" = "$(wc -l < "$f")" ] || fail "$f: records != lines"
done
"$VG" audit show --config data/volguard.yaml -o json > show-audit.json
"$VG" audit show --config data/volguard.yaml --access -o json > show-access.json
"$PY" "$HERE/audit_interop.py" check-logfmt decoded.jsonl show-audit.json show-access.json \
  || fail "logfmt values"
"$ORACLE" timecheck "$SRC/deploy/fluent-bit/parsers.conf" volguard_logfmt "${files[@]}" \
  || fail "fluent-bit logfmt parser's time"
"$ORACLE" globcheck "$SRC/deploy/fluent-bit/fluent-bit.conf" /var/lib/volguard/log/security "$LOGS" \
  || fail "fluent-bit tail Path"

# --- JSON ---------------------------------------------------------------------------------
# A new trail in JSON: the logfmt one and its anchor moved away, as the README says to.
mkdir logfmt-trail && mv "$LOGS" logfmt-trail/ && mv data/audit.anchor logfmt-trail/
sed -i 's/^  format: logfmt$/  format: json/' data/volguard.yaml
start_server
"$PY" "$HERE/audit_interop.py" drive "$VG" "$EP" data/shared.secret js || fail "driving the server (json)"
if [ "$CRASH_POINTS" = 1 ]; then
  # An intent left open by a crash gets an "Outcome unknown" record at the next start: typed too.
  kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
  start_server after_act:volume.create
  "$PY" "$HERE/audit_interop.py" crash-create "$VG" "$EP" data/shared.secret || fail "crash create"
  wait "$server_pid" 2>/dev/null || true; server_pid=""
  start_server
  grep -q '"msg":"Outcome unknown"' "$LOGS/volguard-audit.log" || fail "no Outcome unknown record"
fi
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
"$VG" audit verify --config data/volguard.yaml > verify.txt || fail "audit verify (json): $(cat verify.txt)"
mapfile -t files < <(all_files)
"$PY" "$HERE/audit_interop.py" check-json "${files[@]}" || fail "JSON values"
"$ORACLE" timecheck "$SRC/deploy/fluent-bit/parsers.conf" volguard_json "${files[@]}" \
  || fail "fluent-bit json parser's time"
echo PASS
