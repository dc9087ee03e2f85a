# Real etcd clusters for shell tests: source this file, then
#
#   etcd_cluster_start DIR [N]   N members (default 3) on 127.0.0.1 with free ports, data dirs and
#                                zap logs under DIR (created; should be empty); waits until every
#                                member is healthy; exports and prints ETCD_ENDPOINTS
#                                ("127.0.0.1:p1,127.0.0.1:p2,...", member order)
#   etcd_member_kill DIR I       SIGKILL member I (0-based), waits until it is gone
#   etcd_member_stop DIR I       SIGTERM member I (SIGKILL after 10 s), waits until it is gone
#   etcd_member_start DIR I      starts member I again on its data dir (returns at once)
#   etcd_wait_healthy DIR [S]    waits (S seconds, default 30) until every running member is
#                                healthy; fails otherwise
#   etcd_member_endpoint DIR I   prints member I's endpoint
#   etcd_leader DIR              prints the leader's index (fails when none within 10 s)
#   etcd_cluster_stop DIR        kills every member and removes DIR
#
# Call etcd_cluster_start and etcd_member_start from the test script's own shell, not inside
# $(...) or a pipeline: members run with the parent-death signal SIGKILL (setpriv --pdeathsig),
# so they die with the shell that started them even if it is killed; and call
# `trap 'etcd_cluster_stop DIR' EXIT` right after starting.
# Raft timings are short (heartbeat 50 ms, election 500 ms): elections take well under a second.

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}

_etcd_die() {
  echo "etcd_lib: $*" >&2
  return 1
}

_etcd_free_ports() {  # N: prints N distinct free loopback ports, one per line
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

_etcd_spawn() {  # DIR I
  local dir=$1 i=$2
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  local cport="ETCD_CLIENT_PORT_$i" pport="ETCD_PEER_PORT_$i"
  setpriv --pdeathsig KILL "$ETCD_BIN" --name "m$i" --data-dir "$dir/m$i.etcd" \
    --listen-client-urls "http://127.0.0.1:${!cport}" \
    --advertise-client-urls "http://127.0.0.1:${!cport}" \
    --listen-peer-urls "http://127.0.0.1:${!pport}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${!pport}" \
    --initial-cluster "$ETCD_INITIAL_CLUSTER" --initial-cluster-state new \
    --initial-cluster-token "$ETCD_CLUSTER_TOKEN" \
    --heartbeat-interval 50 --election-timeout 500 \
    --logger zap --log-outputs "$dir/m$i.log" </dev/null >/dev/null 2>>"$dir/m$i.stderr" &
  echo $! >"$dir/m$i.pid"
  # Not a job of the caller's shell: no "Killed" report when a test kills it.
  disown $!
}

_etcd_pid() {  # DIR I: prints the member's pid when it runs
  local f="$1/m$2.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # A zombie (dead, not yet reaped) does not run.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

_etcd_wait_gone() {  # DIR I GRACE_S
  local dir=$1 i=$2 grace=$3 pid n=0
  pid=$(cat "$dir/m$i.pid" 2>/dev/null) || return 0
  while _etcd_pid "$dir" "$i" >/dev/null; do
    if [ $n -ge $((grace * 20)) ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.05
    n=$((n + 1))
  done
  rm -f "$dir/m$i.pid"
  return 0
}

etcd_member_endpoint() {  # DIR I
  # shellcheck disable=SC1091
  source "$1/cluster.env"
  local cport="ETCD_CLIENT_PORT_$2"
  echo "127.0.0.1:${!cport}"
}

_etcd_healthy() {  # DIR I
  curl -fsS --max-time 1 "http://$(etcd_member_endpoint "$1" "$2")/health" 2>/dev/null |
    grep -q '"health":"true"'
}

etcd_wait_healthy() {  # DIR [SECONDS]
  local dir=$1 secs=${2:-30} i n deadline
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  deadline=$((SECONDS + secs))
  for ((i = 0; i < ETCD_MEMBERS; i++)); do
    [ -f "$dir/m$i.pid" ] || continue
    until _etcd_healthy "$dir" "$i"; do
      _etcd_pid "$dir" "$i" >/dev/null || _etcd_die "member $i exited (see $dir/m$i.log)" || return 1
      [ $SECONDS -lt $deadline ] || _etcd_die "member $i not healthy in ${secs}s" || return 1
      sleep 0.05
    done
  done
}

etcd_cluster_start() {  # DIR [N]
  local dir=$1 n=${2:-3} i attempt ports initial eps
  [ "${BASH_SUBSHELL:-0}" -eq 0 ] ||
    _etcd_die "call etcd_cluster_start in the script's own shell, not in \$(...) or a pipeline" ||
    return 1
  [ -x "$ETCD_BIN" ] || _etcd_die "no etcd at $ETCD_BIN" || return 1
  mkdir -p "$dir" || return 1
  # A port taken between picking and binding makes a member exit: new ports, fresh data dirs.
  for attempt in 1 2 3; do
    mapfile -t ports < <(_etcd_free_ports $((2 * n)))
    initial=""
    eps=""
    {
      echo "ETCD_MEMBERS=$n"
      echo "ETCD_CLUSTER_TOKEN=vgsh-$$-$RANDOM"
      for ((i = 0; i < n; i++)); do
        echo "ETCD_CLIENT_PORT_$i=${ports[2 * i]}"
        echo "ETCD_PEER_PORT_$i=${ports[2 * i + 1]}"
        initial+="${initial:+,}m$i=http://127.0.0.1:${ports[2 * i + 1]}"
        eps+="${eps:+,}127.0.0.1:${ports[2 * i]}"
      done
      echo "ETCD_INITIAL_CLUSTER=$initial"
      echo "ETCD_ENDPOINTS_ALL=$eps"
    } >"$dir/cluster.env"
    for ((i = 0; i < n; i++)); do _etcd_spawn "$dir" "$i"; done
    if etcd_wait_healthy "$dir" 30 2>/dev/null; then
      export ETCD_ENDPOINTS=$eps
      echo "$ETCD_ENDPOINTS"
      return 0
    fi
    for ((i = 0; i < n; i++)); do etcd_member_kill "$dir" "$i"; done
    [ $attempt -lt 3 ] || break
    rm -rf "$dir"/m*.etcd
  done
  _etcd_die "the etcd cluster in $dir did not become healthy:"
  tail -n 20 "$dir"/m*.log "$dir"/m*.stderr >&2 2>/dev/null
  return 1
}

etcd_member_kill() {  # DIR I
  local pid
  if pid=$(_etcd_pid "$1" "$2"); then kill -KILL "$pid" 2>/dev/null || true; fi
  _etcd_wait_gone "$1" "$2" 10
}

etcd_member_stop() {  # DIR I
  local pid
  if pid=$(_etcd_pid "$1" "$2"); then kill -TERM "$pid" 2>/dev/null || true; fi
  _etcd_wait_gone "$1" "$2" 10
}

etcd_member_start() {  # DIR I
  [ "${BASH_SUBSHELL:-0}" -eq 0 ] ||
    _etcd_die "call etcd_member_start in the script's own shell, not in \$(...)" || return 1
  _etcd_pid "$1" "$2" >/dev/null && return 0
  _etcd_spawn "$1" "$2"
}

etcd_leader() {  # DIR: the index of the member whose own id is the leader it reports
  local dir=$1 i status self leader deadline=$((SECONDS + 10))
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  while [ $SECONDS -lt $deadline ]; do
    for ((i = 0; i < ETCD_MEMBERS; i++)); do
      _etcd_pid "$dir" "$i" >/dev/null || continue
      # The JSON gateway gives 64-bit ids as strings (etcdctl's JSON has them as numbers, which jq
      # would round).
      status=$(curl -fsS --max-time 1 -X POST -d '{}' \
        "http://$(etcd_member_endpoint "$dir" "$i")/v3/maintenance/status" 2>/dev/null) || continue
      self=$(jq -r '.header.member_id // empty' <<<"$status")
      leader=$(jq -r '.leader // empty' <<<"$status")
      if [ -n "$self" ] && [ "$self" = "$leader" ]; then
        echo "$i"
        return 0
      fi
    done
    sleep 0.05
  done
  _etcd_die "no leader in $dir"
}

etcd_cluster_stop() {  # DIR
  local dir=$1 i n=0
  if [ -f "$dir/cluster.env" ]; then n=$(sed -n 's/^ETCD_MEMBERS=//p' "$dir/cluster.env"); fi
  for ((i = 0; i < n; i++)); do etcd_member_kill "$dir" "$i"; done
  rm -rf "$dir"
}
