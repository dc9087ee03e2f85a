# Shared by the CLI tests: a work directory cleaned up on exit (mounts, loop devices, the server),
# a fresh `volguard init` on free loopback ports, and start_server. Source it after setting VG
# and WORK_PREFIX; it cd's into $work.
work=$(mktemp -d "/tmp/${WORK_PREFIX:-volguard-cli}-XXXXXX")
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  for m in $(awk '{print $2}' /proc/mounts | grep "^$work" || true); do umount -l "$m" || true; done
  for f in "$work"/data/volumes/*.img; do
    [ -e "$f" ] && losetup -j "$f" | cut -d: -f1 | xargs -r losetup -d || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; [ -f server.log ] && tail -20 server.log >&2; exit 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GP=$(free_port); RP=$(free_port)
EP="127.0.0.1:$GP"
"$VG" init --data-dir "$work/data" --grpc "$EP" --rest "127.0.0.1:$RP" > init.out

# start_server [CRASH_AT]: runs the server (with the test build's crash point armed, if given)
# and waits until it answers.
start_server() {
  VOLGUARD_CRASH_AT="${1:-}" "$VG" server --config data/volguard.yaml >> server.log 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$RP/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "server did not start"
}
