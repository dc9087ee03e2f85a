#!/usr/bin/env bash
# `volguard token generate|verify` and `server --check` as a user drives them: flags, files,
# exit codes, output shape, and that a token never appears in any output but generate's.
set -euo pipefail
VG="$1"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { local want=$1; shift; set +e; "$@" >out 2>err; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* (stderr: $(cat err))"; }

head -c 48 /dev/urandom | base64 -w0 > secret; echo >> secret
printf 'short\n' > weak
chmod 600 secret weak  # a secret group or others can read refuses to start
cat > vg.yaml <<YAML
security:
  token_lifetime: 2h
  issuers:
    - issuer: volguard.local
      shared_secret_file: $work/secret
YAML

# generate: the pxctl flags; prints only the token.
tok=$("$VG" token generate --issuer volguard.local --shared-secret-file secret \
      --name Alice --email alice@example.com --subject alice --roles system.user --groups eng,ops --duration 7d)
[ "$(echo "$tok" | wc -l)" = 1 ] || fail "generate printed more than the token"
[[ "$tok" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "not a compact JWS: $tok"

# verify: one JSON object with exactly the documented fields.
out=$("$VG" token verify --config vg.yaml "$tok")
echo "$out" | python3 -c '
import json,sys,datetime
o=json.load(sys.stdin)
assert sorted(o)==sorted(["username","subject","name","email","issuer","roles","groups","expires_at"]),o
assert o["username"]=="alice" and o["subject"]=="alice" and o["name"]=="Alice", o
assert o["email"]=="alice@example.com" and o["issuer"]=="volguard.local", o
assert o["roles"]==["system.user"] and o["groups"]==["eng","ops"], o
exp=datetime.datetime.strptime(o["expires_at"],"%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
left=(exp-datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert 7*86400-120 < left <= 7*86400, left
' || fail "verify output: $out"
echo "$tok" | "$VG" token verify --config vg.yaml - >/dev/null || fail "stdin verify"

# --auth-config (the seeds' admin.yml shape) and the config's default lifetime.
cat > admin.yml <<'YAML'
name: Administrator
email: admin@example.com
sub: admin@example.com/admin
roles: ["system.admin"]
groups: ["*"]
YAML
tok2=$("$VG" token generate --config vg.yaml --auth-config admin.yml --issuer volguard.local --shared-secret-file secret)
out=$("$VG" token verify --config vg.yaml "$tok2")
echo "$out" | grep -q '"roles":\["system.admin"\]' || fail "auth-config roles: $out"
echo "$out" | python3 -c '
import json,sys,datetime
o=json.load(sys.stdin)
exp=datetime.datetime.strptime(o["expires_at"],"%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
left=(exp-datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert 2*3600-120 < left <= 2*3600, left' || fail "default lifetime from config: $out"

# --output writes mode 0600 and prints nothing.
"$VG" token generate --shared-secret-file secret --subject bob --output bob.token >out
[ ! -s out ] || fail "--output also printed"
[ "$(stat -c %a bob.token)" = 600 ] || fail "token file mode $(stat -c %a bob.token)"
"$VG" token verify --config vg.yaml "$(cat bob.token)" >/dev/null || fail "--output token"

# RSA and EC keys, and the key-flag rules.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec.key
expect_rc 2 "$VG" token generate --subject x
grep -q "exactly one of" err || fail "no key flag message"
expect_rc 2 "$VG" token generate --subject x --shared-secret-file secret --rsa-private-keyfile rsa.key
expect_rc 2 "$VG" token generate --subject x --rsa-private-keyfile ec.key
grep -q "not an RSA private key" err || fail "wrong key kind message: $(cat err)"
expect_rc 2 "$VG" token generate --subject x --shared-secret-file weak
grep -q "at least 32" err || fail "weak secret message: $(cat err)"
expect_rc 2 "$VG" token generate --subject x --shared-secret-file secret --duration 5w
grep -q "unknown unit" err || fail "duration message"
expect_rc 2 "$VG" token generate --shared-secret-file secret
grep -q "names nobody" err || fail "no subject message"
hdr=$("$VG" token generate --subject x --ecdsa-private-keyfile ec.key | cut -d. -f1)
python3 -c 'import base64,sys; h=sys.argv[1]; print(base64.urlsafe_b64decode(h+"="*(-len(h)%4)).decode())' "$hdr" \
  | grep -q '"alg":"ES384"' || fail "P-384 key must sign ES384"

# verify refusals: exit 1, reason on stderr, never the token text.
check_refused() { # token reason
  set +e; "$VG" token verify --config vg.yaml "$1" >out 2>err; rc=$?; set -e
  [ $rc = 1 ] || fail "expected exit 1 for $2, got $rc"
  grep -q "$2" err || fail "expected reason $2, got: $(cat err)"
  [ ! -s out ] || fail "refusal printed to stdout"
  for part in $(echo "$1" | tr '.' ' '); do
    [ ${#part} -lt 8 ] && continue
    if grep -qF -- "$part" err; then fail "token text leaked into stderr for $2"; fi
  done
}
other=$(mktemp); head -c 48 /dev/urandom | base64 -w0 > "$other"
check_refused "$("$VG" token generate --shared-secret-file "$other" --subject x)" signature_invalid
check_refused "$("$VG" token generate --shared-secret-file secret --issuer evil --subject x)" issuer_unknown
check_refused "not-a-token" token_malformed
check_refused "$(head -c 20000 /dev/zero | tr '\0' a)" token_too_large
h=$(printf '{"alg":"none"}' | base64 -w0 | tr '+/' '-_' | tr -d =)
p=$(printf '{"iss":"volguard.local","sub":"x","exp":9999999999}' | base64 -w0 | tr '+/' '-_' | tr -d =)
check_refused "$h.$p." alg_none

# Config refusals name file, key and reason; server --check validates the same way.
printf 'security:\n  issuers:\n    - issuer: a\n      shared_secret_file: %s/weak\n' "$work" > weak.yaml
expect_rc 2 "$VG" server --config weak.yaml --check
grep -q "weak.yaml: security.issuers\[0\].shared_secret_file" err || fail "weak config message: $(cat err)"
printf 'security:\n  gest_access: true\n' > typo.yaml
expect_rc 2 "$VG" token verify --config typo.yaml "$tok"
grep -q "typo.yaml: security.gest_access: unknown key" err || fail "typo message: $(cat err)"
chmod 644 secret  # readable by group and others: refused, naming file, key, path and mode
expect_rc 2 "$VG" server --config vg.yaml --check
grep -q "vg.yaml: security.issuers\[0\].shared_secret_file: $work/secret: mode 0644" err ||
  fail "exposed secret message: $(cat err)"
chmod 600 secret
"$VG" server --config vg.yaml --check >out || fail "server --check on a good config"
grep -q "issuers: 1" out || fail "check summary: $(cat out)"
echo PASS
