#!/usr/bin/env bash
# Encrypted vs plain volume throughput, each row beside its limit measured in the same run.
#
# A real server (`volguard init` + `volguard server`, SQLite, the local driver) makes one plain
# and one encrypted (fscrypt, --secure) ext4 volume; fio runs the same jobs through each mount:
# sequential write/read (1 MiB blocks) and random write/read (4 KiB blocks). Writes end with an
# fsync (the data is encrypted on its way to the disk); before each read job the volume is
# unmounted and mounted again, so its page cache (which holds plaintext) is empty and every
# block read is decrypted. The limit beside the ratio is what the CPU can encrypt:
# `openssl speed -evp aes-256-xts` at 4 KiB (fscrypt encrypts one 4 KiB block at a time).
#
# Usage: encryption_bench.sh VOLGUARD_BINARY [SIZE_MB] [RUNTIME_S] [smoke]. Exit 1 when a ratio
# is below the goal (0.7); with `smoke` (make test), only when a row could not be measured.
set -euo pipefail
VG="$1"
SIZE_MB="${2:-256}"
RUNTIME="${3:-8}"
GOAL=0.7
SMOKE="${4:-}"

command -v fio >/dev/null || { echo "fio is missing (make deps installs it)" >&2; exit 2; }
work=$(mktemp -d /tmp/volguard-encbench-XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  for m in $(awk '{print $2}' /proc/mounts | grep "^$work" || true); do umount -l "$m" || true; done
  for f in "$work"/data/volumes/*.img; do
    [ -e "$f" ] && losetup -j "$f" | cut -d: -f1 | xargs -r losetup -d || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GP=$(port); RP=$(port); EP="127.0.0.1:$GP"
"$VG" init --data-dir "$work/data" --grpc "$EP" --rest "127.0.0.1:$RP" > /dev/null
"$VG" server --config data/volguard.yaml > server.log 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
vg() { "$VG" --endpoint "$EP" --token "$(cat data/admin.token)" "$@" > /dev/null; }

size=$(( SIZE_MB * 2 + 256 ))M
vg volume create bench-plain --size "$size"
vg volume create bench-enc --size "$size" --secure
mkdir -p mnt-plain mnt-enc
remount() { vg volume unmount "bench-$1"; vg volume mount "bench-$1" --path "$work/mnt-$1"; }
vg volume mount bench-plain --path "$work/mnt-plain"
vg volume mount bench-enc --path "$work/mnt-enc"

# fio_mbps KIND JOB RW BS: MB/s of one fio job in the mount of KIND.
fio_mbps() {
  local kind=$1 job=$2 rw=$3 bs=$4
  case "$rw" in read|randread) remount "$kind" ;; esac
  fio --name="$job" --directory="$work/mnt-$kind" --filename="$job.dat" --rw="$rw" --bs="$bs" \
      --size="${SIZE_MB}M" --ioengine=psync --end_fsync=1 --time_based=0 --runtime="$RUNTIME" \
      --output-format=json > "fio-$kind-$job.json" 2>/dev/null
  /usr/bin/python3 - "fio-$kind-$job.json" "$rw" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if "read" in sys.argv[2] else "write"
print("%.1f" % (j[side]["bw_bytes"] / 1e6))
PY
}

limit=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds 3 2>/dev/null \
  | awk '/^aes-256-xts/ {v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6}')

printf '%-28s %12s %12s %8s %8s  %s\n' "encrypted volume (fscrypt)" "plain MB/s" "enc MB/s" "ratio" "goal" \
  "limit: openssl aes-256-xts 4KiB (1 core)"
rc=0
for spec in "seq-write write 1M" "seq-read read 1M" "rand-write randwrite 4k" "rand-read randread 4k"; do
  set -- $spec
  plain=$(fio_mbps plain "$1" "$2" "$3")
  enc=$(fio_mbps enc "$1" "$2" "$3")
  ratio=$(/usr/bin/python3 -c "print('%.2f' % ($enc / $plain if $plain > 0 else 0))")
  ok=$(/usr/bin/python3 -c "print('met' if $ratio >= $GOAL else 'MISSED')")
  [ "$ok" = met ] || [ -n "$SMOKE" ] || rc=1
  /usr/bin/python3 -c "import sys; sys.exit(0 if $plain > 0 and $enc > 0 else 1)" || rc=1
  printf '%-28s %12s %12s %8s %8s  %s MB/s (%s)\n' "$1 ($3, ${SIZE_MB} MiB)" "$plain" "$enc" "$ratio" ">=$GOAL" \
    "$limit" "$ok"
done
exit $rc
