#!/usr/bin/env bash
# Creates the Secrets volguard needs, the way the Portworx operator creates px-shared-secret,
# px-admin-token and px-user-token; tokens are signed by `volguard token generate`.
#
#   ./make-secrets.sh                          first install (kube-system): the issuer's shared
#                                              secret, the audit chain key, admin and user
#                                              tokens, and the CSI controller's credential
#   ./make-secrets.sh controller-token         re-mint the controller's credential (rotation)
#   ./make-secrets.sh tenant NS [ROLE] [TTL]   create or replace px-user-token in namespace NS
#                                              (subject and group NS, role system.user, 30d)
#
# Needs kubectl, openssl and the volguard binary (VG=/path/to/volguard, default from PATH).
# The node credentials are not made here: each node mints its own (30-server-and-node.yaml).
set -euo pipefail
VG=${VG:-volguard}
ISSUER=volguard.local          # = the issuer in 00-namespace-and-config.yaml
umask 077
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# kubectl create ... | apply: creates the Secret, or replaces its data in place.
apply_secret() {  # NAMESPACE NAME KEY FILE
  kubectl -n "$1" create secret generic "$2" --from-file="$3=$4" --dry-run=client -o yaml |
    kubectl apply -f -
}

# The issuer secret as installed, for the commands that run after the first install.
fetch_shared_secret() {
  kubectl -n kube-system get secret volguard-shared-secret -o jsonpath='{.data.shared-secret}' |
    base64 -d > "$work/shared-secret"
  [ -s "$work/shared-secret" ] || { echo "error: no volguard-shared-secret in kube-system" >&2; exit 1; }
}

# Read-only credential for the secretless CSI calls (ListVolumes, ControllerGetVolume,
# GetCapacity): role system.csi-controller sees every volume's metadata and changes nothing.
controller_token() {
  "$VG" token generate --issuer "$ISSUER" --shared-secret-file "$work/shared-secret" \
    --subject csi-controller --name "CSI controller" --roles system.csi-controller \
    --duration 90d --output "$work/controller"
  apply_secret kube-system volguard-csi-controller-token token "$work/controller"
}

case "${1:-install}" in
  install)
    openssl rand -base64 48 | tr -d '\n' > "$work/shared-secret"
    openssl rand -base64 32 | tr -d '\n' > "$work/audit-key"
    # `create`, not apply: never overwrite an installed issuer secret or audit key.
    kubectl -n kube-system create secret generic volguard-shared-secret --from-file=shared-secret="$work/shared-secret"
    kubectl -n kube-system create secret generic volguard-audit-key --from-file=audit-key="$work/audit-key"
    # The KEK of encrypted volumes (never overwritten: volumes wrapped by it would not open).
    openssl rand -hex 32 > "$work/kek"
    kubectl -n kube-system create secret generic volguard-kek --from-file=kek="$work/kek"
    "$VG" token generate --issuer "$ISSUER" --shared-secret-file "$work/shared-secret" \
      --subject admin --name Administrator --email admin@volguard.local --roles system.admin --groups '*' \
      --duration 30d --output "$work/admin"
    "$VG" token generate --issuer "$ISSUER" --shared-secret-file "$work/shared-secret" \
      --subject user --name User --email user@volguard.local --roles system.user --groups users \
      --duration 30d --output "$work/user"
    kubectl -n kube-system create secret generic px-admin-token --from-file=auth-token="$work/admin"
    kubectl -n kube-system create secret generic px-user-token --from-file=auth-token="$work/user"
    controller_token
    echo "created volguard-shared-secret, volguard-audit-key, volguard-kek, px-admin-token, px-user-token," \
         "volguard-csi-controller-token in kube-system"
    ;;
  controller-token)
    fetch_shared_secret
    controller_token
    echo "replaced volguard-csi-controller-token in kube-system"
    ;;
  tenant)
    ns=${2:?usage: make-secrets.sh tenant NAMESPACE [ROLE] [DURATION]}
    role=${3:-system.user}
    ttl=${4:-30d}
    fetch_shared_secret
    "$VG" token generate --issuer "$ISSUER" --shared-secret-file "$work/shared-secret" \
      --subject "$ns" --name "namespace $ns" --roles "$role" --groups "$ns" \
      --duration "$ttl" --output "$work/tenant"
    apply_secret "$ns" px-user-token auth-token "$work/tenant"
    echo "px-user-token in $ns: subject $ns, role $role, valid $ttl"
    ;;
  *)
    echo "usage: make-secrets.sh [install | controller-token | tenant NAMESPACE [ROLE] [DURATION]]" >&2
    exit 2
    ;;
esac
