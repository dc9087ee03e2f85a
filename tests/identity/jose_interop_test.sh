#!/usr/bin/env bash
# Cross-checks volguard's JWS with independent implementations: npm jose and the openssl CLI.
# Tokens minted by volguard must verify in jose; tokens minted by jose and by openssl must
# verify in `volguard token verify`; and a token is refused by both when tampered with.
set -euo pipefail
VG="$1"; NPM_DIR="$2"
TOOL="$(cd "$(dirname "$0")/../js" && pwd)/jose_tool.mjs"
export NODE_PATH="$NPM_DIR/node_modules"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
# jose must resolve from the npm dir: run node with the tool copied beside node_modules.
cp "$TOOL" "$NPM_DIR/jose_tool.mjs"
jt() { node "$NPM_DIR/jose_tool.mjs" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

openssl rand -base64 48 | tr -d '\n' > secret; echo >> secret; chmod 600 secret
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key
openssl genpkey -algorithm ED25519 -out ed.key
for k in rsa p256 p384 ed; do openssl pkey -in $k.key -pubout -out $k.pub; done

cat > vg.yaml <<YAML
security:
  issuers:
    - {issuer: hs.issuer, shared_secret_file: $work/secret}
    - {issuer: rsa.issuer, public_key_file: $work/rsa.pub}
    - {issuer: p256.issuer, public_key_file: $work/p256.pub}
    - {issuer: p384.issuer, public_key_file: $work/p384.pub}
    - {issuer: ed.issuer, public_key_file: $work/ed.pub}
YAML

# 1. volguard mints, jose verifies.
check_ours() { # alg keyflag keyfile issuer pubfile
  local alg=$1 flag=$2 keyfile=$3 iss=$4 pub=$5
  tok=$("$VG" token generate --issuer "$iss" $flag "$keyfile" --name "Ann" --email ann@x \
        --subject ann --roles system.user,custom --groups g1,g2 --duration 1h)
  out=$(jt verify "$alg" "$pub" "$iss" "$tok") || fail "jose refused volguard's $alg token"
  echo "$out" | grep -q '"sub":"ann"' || fail "$alg: sub lost: $out"
  echo "$out" | grep -q '"roles":\["system.user","custom"\]' || fail "$alg: roles lost: $out"
  echo "$out" | grep -q '"jti":"[0-9a-f]\{32\}"' || fail "$alg: no jti: $out"
  # Tamper one payload character: jose must refuse it too.
  IFS=. read -r h p s <<<"$tok"
  bad="$h.${p%?}$( [ "${p: -1}" = A ] && echo B || echo A ).$s"
  if jt verify "$alg" "$pub" "$iss" "$bad" 2>/dev/null; then fail "jose accepted tampered $alg"; fi
  echo "ok: volguard $alg -> jose"
}
check_ours HS256 --shared-secret-file secret hs.issuer secret
check_ours RS256 --rsa-private-keyfile rsa.key rsa.issuer rsa.pub
check_ours ES256 --ecdsa-private-keyfile p256.key p256.issuer p256.pub
check_ours ES384 --ecdsa-private-keyfile p384.key p384.issuer p384.pub
check_ours EdDSA --ecdsa-private-keyfile ed.key ed.issuer ed.pub

# 2. jose mints, volguard verifies.
check_theirs() { # alg keyfile issuer
  tok=$(jt sign "$1" "$2" "$3")
  out=$("$VG" token verify --config vg.yaml "$tok") || fail "volguard refused jose's $1 token"
  echo "$out" | grep -q "\"username\":\"jose-$1\"" || fail "$1: wrong identity: $out"
  echo "$out" | grep -q "\"issuer\":\"$3\"" || fail "$1: wrong issuer: $out"
  echo "$out" | grep -q '"groups":\["interop"\]' || fail "$1: groups lost: $out"
  echo "ok: jose $1 -> volguard"
}
for a in HS256 HS384 HS512; do check_theirs $a secret hs.issuer; done
for a in RS256 RS384 RS512 PS256 PS384 PS512; do check_theirs $a rsa.key rsa.issuer; done
check_theirs ES256 p256.key p256.issuer
check_theirs ES384 p384.key p384.issuer
check_theirs EdDSA ed.key ed.issuer

# A jose ES256 token presented to the P-384 issuer: refused as an algorithm/key mismatch.
tok=$(jt sign ES256 p256.key p384.issuer)
if "$VG" token verify --config vg.yaml "$tok" 2>err; then fail "ES256 accepted for a P-384 key"; fi
grep -q alg_key_mismatch err || fail "expected alg_key_mismatch, got: $(cat err)"

# 3. The openssl CLI mints (no JWT library at all), volguard verifies.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
payload=$(printf '{"iss":"rsa.issuer","sub":"openssl-user","exp":%d,"iat":%d,"roles":["system.view"]}' $((now+300)) "$now" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign rsa.key -binary | b64url)
out=$("$VG" token verify --config vg.yaml "$header.$payload.$sig") || fail "openssl RS256 refused"
echo "$out" | grep -q '"username":"openssl-user"' || fail "openssl RS256 identity: $out"
header=$(printf '{"alg":"HS256"}' | b64url)
payload=$(printf '{"iss":"hs.issuer","sub":"hmac-user","exp":%d}' $((now+300)) | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -mac HMAC -macopt "key:$(head -c -1 secret)" -binary | b64url)
out=$(echo "$header.$payload.$sig" | "$VG" token verify --config vg.yaml -) || fail "openssl HS256 refused (stdin)"
echo "$out" | grep -q '"username":"hmac-user"' || fail "openssl HS256 identity: $out"
echo "ok: openssl CLI RS256/HS256 -> volguard"
echo PASS
