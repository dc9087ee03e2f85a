#!/usr/bin/env bash
# tests/cluster/etcd_lib.sh on a real 3-member cluster: start, write, kill the leader, still
# write, stop a member and start it again, stop everything with no etcd left behind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=etcd_lib.sh
source "$here/etcd_lib.sh"

dir=$(mktemp -d "${TMPDIR:-/tmp}/etcd-lib-test.XXXXXX")
trap 'etcd_cluster_stop "$dir"' EXIT
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" --command-timeout=5s "$@"; }

etcd_cluster_start "$dir" 3 >/dev/null
[[ "$ETCD_ENDPOINTS" =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] ||
  { echo "bad ETCD_ENDPOINTS: $ETCD_ENDPOINTS"; exit 1; }
ctl put k v1 >/dev/null
[ "$(ctl get k --print-value-only)" = v1 ]

leader=$(etcd_leader "$dir")
echo "leader: $leader"
pid=$(cat "$dir/m$leader.pid")
etcd_member_kill "$dir" "$leader"
! kill -0 "$pid" 2>/dev/null || { echo "member $leader still runs"; exit 1; }
# The other two elect a leader and take writes.
for _ in $(seq 100); do ctl put k v2 >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(ctl get k --print-value-only)" = v2 ]
new_leader=$(etcd_leader "$dir")
[ "$new_leader" != "$leader" ] || { echo "leader did not change"; exit 1; }

etcd_member_start "$dir" "$leader"
other=$(( (new_leader + 1) % 3 )); [ "$other" != "$leader" ] || other=$(( (other + 1) % 3 ))
etcd_member_stop "$dir" "$other"
etcd_wait_healthy "$dir" 30
etcd_member_start "$dir" "$other"
etcd_wait_healthy "$dir" 30
# Every member answers with the data, the restarted ones included.
for i in 0 1 2; do
  [ "$(ETCDCTL_API=3 etcdctl --endpoints="$(etcd_member_endpoint "$dir" "$i")" get k \
       --print-value-only)" = v2 ]
done

# Starting inside $(...) is refused (the members would die with the subshell).
if out=$(etcd_cluster_start "$dir/sub" 1 2>&1); then echo "accepted in a subshell"; exit 1; fi

pids=$(cat "$dir"/m*.pid)
etcd_cluster_stop "$dir"
trap - EXIT
for p in $pids; do ! kill -0 "$p" 2>/dev/null || { echo "etcd $p left running"; exit 1; }; done
[ ! -e "$dir" ]
echo "etcd_lib ok"
