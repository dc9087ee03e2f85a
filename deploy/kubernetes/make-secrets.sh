#!/usr/bin/env bash
# Creates the Secrets the Portworx operator would: the shared secret, the audit chain key, and
# admin/user tokens (kube-system), signed by `volguard token generate`.
#   ./make-secrets.sh                      # needs kubectl, openssl and the volguard binary
set -euo pipefail
VG=${VG:-volguard}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
openssl rand -base64 48 | tr -d '\n' > "$work/shared-secret"
openssl rand -base64 32 | tr -d '\n' > "$work/audit-key"
kubectl -n kube-system create secret generic volguard-shared-secret --from-file=shared-secret="$work/shared-secret"
kubectl -n kube-system create secret generic volguard-audit-key --from-file=audit-key="$work/audit-key"
"$VG" token generate --issuer volguard.local --shared-secret-file "$work/shared-secret" \
  --subject admin --name Administrator --email admin@volguard.local --roles system.admin --groups '*' \
  --duration 30d --output "$work/admin"
"$VG" token generate --issuer volguard.local --shared-secret-file "$work/shared-secret" \
  --subject user --name User --email user@volguard.local --roles system.user --groups users \
  --duration 30d --output "$work/user"
kubectl -n kube-system create secret generic px-admin-token --from-file=auth-token="$work/admin"
kubectl -n kube-system create secret generic px-user-token --from-file=auth-token="$work/user"
echo "created volguard-shared-secret, volguard-audit-key, px-admin-token, px-user-token in kube-system"
