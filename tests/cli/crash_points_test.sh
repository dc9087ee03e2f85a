#!/usr/bin/env bash
# Crash recovery at exact steps (the test build's crash points, src/common/crash_point.h): the
# real server SIGKILLs itself between a change's intent and its act, and between its act and its
# outcome record, for a create and a delete. After each restart: every intent has exactly one
# outcome, the one the crash left open is `outcome=unknown` naming what recovery found, the
# store and the disk agree, `audit verify` still passes the chain (the run is marked unclean).
set -euo pipefail
VG="$1"
WORK_PREFIX=volguard-crash
# shellcheck source=server_lib.sh
source "$(dirname "$0")/server_lib.sh"
TRAIL=data/log/security/volguard-audit.log

ADMIN=$(cat data/admin.token)
vg() { "$VG" --endpoint "$EP" --token "$ADMIN" "$@"; }

# crash POINT METHOD COMMAND...: the server dies at POINT of METHOD while COMMAND runs.
crash() {
  local at="$1:$2"; shift 2
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""; fi
  start_server "$at"
  set +e; vg "$@" > crash.out 2>&1; local rc=$?; set -e
  [ "$rc" != 0 ] || fail "$at: the call was acknowledged although the server died before its outcome"
  wait "$server_pid" 2>/dev/null || true
  kill -0 "$server_pid" 2>/dev/null && fail "$at: the server did not die"
  server_pid=""
  start_server
}

# check_pairing EXPECTED_FOUND: every intent has one outcome; exactly one new unknown, whose found=
# text contains EXPECTED_FOUND.
unknowns_before=0
check_pairing() {
  /usr/bin/python3 - "$TRAIL" "$1" "$unknowns_before" <<'PY' || fail "pairing after crash: $1"
import re, sys
trail, expected, before = sys.argv[1], sys.argv[2], int(sys.argv[3])
intents, outcomes = [], {}
for line in open(trail):
    m = re.search(r' intent=(\S+)', line)
    if not m: continue
    o = re.search(r' outcome=(\S+)', line)
    if o: outcomes.setdefault(m.group(1), []).append((o.group(1), line))
    else: intents.append(m.group(1))
for i in intents:
    assert len(outcomes.get(i, [])) == 1, (i, outcomes.get(i))
unknown = [l for i in intents for (o, l) in outcomes[i] if o == "unknown"]
assert len(unknown) == before + 1, unknown
found = re.search(r'found=("(?:[^"\\]|\\.)*"|\S+)', unknown[-1]).group(1)
assert expected in found, (expected, found)
print("recovered:", re.search(r'method=(\S+)', unknown[-1]).group(1), "found=" + found)
PY
  unknowns_before=$((unknowns_before + 1))
}

# store = disk: every volume listed has its image, no image without a volume, all ready.
check_store_disk() {
  vg volume list -o json > list.json
  /usr/bin/python3 - "$work" "$@" <<'PY' || fail "store and disk disagree"
import json, os, sys
work, want = sys.argv[1], sys.argv[2:]
vols = json.load(open(f"{work}/list.json")).get("volumes", [])
ids = {v["id"] for v in vols}
files = {f[:-4] for f in os.listdir(f"{work}/data/volumes") if f.endswith(".img")}
assert ids == files, ids ^ files
assert all(v["state"] == "ready" for v in vols), vols
names = sorted(v["name"] for v in vols)
assert names == sorted(want), (names, want)
PY
}

# 1. Between intent and act: nothing was made; the open intent says so.
crash after_intent volume.create volume create never-made --size 32M
check_pairing "nothing named never-made is in the store"
check_store_disk

# 2. Between act and outcome: the volume exists (store and disk), acknowledged or not.
crash after_act volume.create volume create made-unacked --size 32M
check_pairing "is in the store, on disk"
check_store_disk made-unacked
ID=$(vg volume inspect made-unacked -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["volume"]["id"])')

# 3. A delete between intent and act: still there.
crash after_intent volume.delete volume delete made-unacked
check_pairing "volume $ID (made-unacked) is in the store, on disk"
check_store_disk made-unacked

# 4. A delete between act and outcome: gone from store and disk.
crash after_act volume.delete volume delete made-unacked
check_pairing "volume $ID is not in the store"
check_store_disk

# 5. kill -9 during the create of an encrypted volume, its image made, its record not ready:
# recovery removes both, so no wrapped key and no image is left (the KEK is the one init wrote).
crash on_disk volume.make volume create enc-crash --size 32M --secure
check_pairing "nothing named enc-crash is in the store"
check_store_disk
[ -z "$(ls data/volumes | grep -v '^\.' || true)" ] || fail "an image was left: $(ls data/volumes)"
left=$(sqlite3 data/volguard.db "SELECT count(*) FROM volumes WHERE wrapped_key != '' OR name = 'enc-crash'")
[ "$left" = 0 ] || fail "a wrapped key or record of the crashed create was left ($left)"
vg volume create enc-crash --size 32M --secure > /dev/null || fail "the name is free again"
vg volume inspect enc-crash -o json | /usr/bin/python3 -c 'import json,sys; assert json.load(sys.stdin)["volume"]["encrypted"] is True' \
  || fail "encrypted after recovery"
vg volume delete enc-crash > /dev/null || fail "delete enc-crash"

# The chain is whole across the crashes; the unclean stops are on record.
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
"$VG" audit verify --config data/volguard.yaml > verify.txt || fail "verify after crashes: $(cat verify.txt)"
grep -c "previous_shutdown=unclean" "$TRAIL" | grep -qx 5 || fail "five unclean restarts on record: $(grep -c previous_shutdown=unclean "$TRAIL")"
echo PASS
