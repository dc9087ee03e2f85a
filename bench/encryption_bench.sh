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
VG=$(realpath "$1")
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

# busy: the host's busy CPU time so far, in centiseconds of all cores (from /proc/stat).
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# fio_run KIND JOB RW BS: "MB/s CPU%" of one fio job in the mount of KIND; CPU% is the host's
# busy time over the job (100 = one core), since fscrypt encrypts in writeback and decrypts in
# a kernel workqueue, outside fio's own CPU accounting.
fio_run() {
  local kind=$1 job=$2 rw=$3 bs=$4
  case "$rw" in read|randread) remount "$kind" ;; esac
  local b0 t0 b1 t1
  b0=$(busy); t0=$(date +%s%N)
  fio --name="$job" --directory="$work/mnt-$kind" --filename="$job.dat" --rw="$rw" --bs="$bs" \
      --size="${SIZE_MB}M" --ioengine=psync --end_fsync=1 --runtime="$RUNTIME" \
      --output-format=json > "fio-$kind-$job.json" 2> "fio-$kind-$job.err" || { cat "fio-$kind-$job.err" >&2; return 1; }
  b1=$(busy); t1=$(date +%s%N)
  rm -f "$work/mnt-$kind/$job.dat"  # the next job has the whole volume
  /usr/bin/python3 - "fio-$kind-$job.json" "$rw" "$b0" "$b1" "$t0" "$t1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if "read" in sys.argv[2] else "write"
b0, b1, t0, t1 = (int(x) for x in sys.argv[3:7])
cpu = 100.0 * (b1 - b0) / 100.0 / max((t1 - t0) / 1e9, 1e-9)  # centiseconds of CPU per second
print("%.1f %.0f" % (j[side]["bw_bytes"] / 1e6, cpu))
PY
}

# The limits, measured now: OpenSSL's AES-256-XTS at 4 KiB (what the CPU can do with AES-NI),
# and which AES-XTS implementation the kernel gives fscrypt (from /proc/crypto): a kernel built
# without CONFIG_CRYPTO_AES_NI_INTEL falls back to a portable table-free AES, many times slower.
limit=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds 3 2>/dev/null \
  | awk '/^(aes|AES)-256-XTS/ {v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6}')
kernel_xts=$(awk '/^name/ {n=$3} /^driver/ && n=="xts(aes)" {print $3; exit}' /proc/crypto)
kernel_aes_ni=$(grep -q "CONFIG_CRYPTO_AES_NI_INTEL=y" <(zcat /proc/config.gz 2>/dev/null) && echo yes || echo "no (CONFIG_CRYPTO_AES_NI_INTEL not set)")

echo "limit: openssl speed -evp aes-256-xts, 4 KiB, 1 core: ${limit} MB/s (same run)"
echo "kernel AES-XTS for fscrypt: ${kernel_xts:-unknown}; kernel AES-NI: ${kernel_aes_ni}"
printf '%-26s %10s %10s %7s %6s %9s %9s  %s\n' "workload" "plain MB/s" "enc MB/s" "ratio" "goal" \
  "plain cpu" "enc cpu" "enc / openssl limit"
rc=0
for spec in "seq-write write 1M" "seq-read read 1M" "rand-write randwrite 4k" "rand-read randread 4k"; do
  set -- $spec
  read -r plain plain_cpu < <(fio_run plain "$1" "$2" "$3")
  read -r enc enc_cpu < <(fio_run enc "$1" "$2" "$3")
  ratio=$(/usr/bin/python3 -c "print('%.2f' % ($enc / $plain if $plain > 0 else 0))")
  of_limit=$(/usr/bin/python3 -c "print('%.3f' % ($enc / $limit if '$limit' and float('$limit') > 0 else 0))")
  ok=$(/usr/bin/python3 -c "print('met' if $ratio >= $GOAL else 'MISSED')")
  [ "$ok" = met ] || [ -n "$SMOKE" ] || rc=1
  /usr/bin/python3 -c "import sys; sys.exit(0 if $plain > 0 and $enc > 0 else 1)" || rc=1
  printf '%-26s %10s %10s %7s %6s %8s%% %8s%%  %s (%s)\n' "$1 ($3, ${SIZE_MB} MiB)" "$plain" "$enc" "$ratio" \
    ">=$GOAL" "$plain_cpu" "$enc_cpu" "$of_limit" "$ok"
done
exit $rc
