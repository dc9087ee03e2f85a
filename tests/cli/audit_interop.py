"""Hostile values through a real server into its logs, and what independent parsers read back.

Used by audit_interop_test.sh:
  audit_interop.py drive VG ENDPOINT SECRET_FILE TAG   calls the server with hostile tokens/labels
  audit_interop.py crash-create VG ENDPOINT SECRET_FILE one create that a crash point interrupts
  audit_interop.py check-logfmt DECODED SHOW_AUDIT SHOW_ACCESS
      DECODED: the Go oracle's (go-logfmt) decoding of every log file, one JSON object per line;
      SHOW_*: `volguard audit show -o json` of the same files (volguard's own parser)
  audit_interop.py check-json FILE...                    the audit.format: json lines, typed
The values sent are defined here once; every check compares with them field by field.
"""
import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time

# Tokens, signed here (HS256 with the issuer's shared secret), not by volguard.
# A: a username with spaces, quotes, '=', a backslash, a literal "\u0041" and "\n" (text, not
# escapes) and non-ASCII; a display name with a newline, a tab, DEL and U+0001; the groups of
# issue 16 ("eng,admin" is one group beside "ops"); a role name that looks like logfmt.
A = {
    "sub": 'al "ice" = x\\y \\u0041 \\n é 日本 😀',
    "name": 'Line1\nLine2\tTabbed "q" \\ é\x7f\x01end',
    "email": 'a"b=c@d\\e 日本',
    "roles": ["system.user", 'weird "role" = x\\'],
    "groups": ["eng,admin", "ops"],
}
# B: groups that hold a tab, a newline, quotes, '=', a backslash, spaces and non-ASCII.
B = {
    "sub": "bob é",
    "name": "",
    "email": "",
    "roles": ["system.user"],
    "groups": ["tab\there", "new\nline", 'q"uote\\=x 日本', "sp ace", ""],
}
# C: a username with a newline is refused (it could forge a line): "Authentication failed".
C = {"sub": "evil\nlevel=error msg=forged", "roles": ["system.user"], "groups": ["ops"]}

# Labels: spaces, quotes, '=', backslashes, non-ASCII, in a value and in a key. The second
# create's label holds a newline: refused (INVALID_ARGUMENT) after its intent is on record.
LABELS = {"note": 'a b "q" x=y \\back é 日本 \'s\' \\"', 'sp ace"k\\': "v=1"}
BAD_LABELS = {"bad": "x\ny\tz"}

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def token(secret_file, claims):
    secret = open(secret_file, "rb").read().rstrip(b"\r\n")
    now = int(time.time())
    claims = {"iss": "volguard.local", "iat": now, "exp": now + 3600, **claims}
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    signing = (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
               b64(json.dumps(claims, ensure_ascii=False).encode()))
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def drive(vg, endpoint, secret_file, tag):
    def run(tok, *args, ok=True, error=None):
        p = subprocess.run([vg, "--endpoint", endpoint, "--token", tok, *args],
                           capture_output=True, text=True)
        if (p.returncode == 0) != ok or (error and error not in p.stderr):
            fail(f"{args}: exit {p.returncode}: {p.stdout} {p.stderr}")
        return p.stdout
    ta, tb, tc = (token(secret_file, c) for c in (A, B, C))
    label_args = lambda labels: [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    # First, enough access records to rotate the access log past audit.keep (the test's
    # audit.max_size is tiny): retention deletes these, not the records checked below.
    # 36 access records in all (audit_interop_test.sh counts on it).
    for _ in range(30):
        run(ta, "volume", "list")
    run(ta, "volume", "create", f"{tag}-a", "--size", "32M", *label_args(LABELS))
    run(ta, "volume", "create", f"{tag}-bad", "--size", "32M", *label_args(BAD_LABELS), ok=False,
        error="INVALID_ARGUMENT invalid_labels")
    run(tb, "volume", "create", f"{tag}-b", "--size", "32M", *label_args(LABELS))
    run(tc, "volume", "list", ok=False, error="UNAUTHENTICATED username_invalid")
    run(ta, "volume", "inspect", f"{tag}-a")
    run(tb, "volume", "inspect", f"{tag}-b")


def crash_create(vg, endpoint, secret_file):
    """One create by A, whose server dies between act and outcome (a crash point)."""
    p = subprocess.run([vg, "--endpoint", endpoint, "--token", token(secret_file, A), "volume",
                        "create", "crash-a", "--size", "32M",
                        *[a for k, v in LABELS.items() for a in ("--label", f"{k}={v}")]],
                       capture_output=True, text=True)
    if p.returncode == 0:
        fail("the create was acknowledged although the server was to die before its outcome")


def identity_of(rec):
    """Which hostile caller a record is about (None: the server's own records, refusals)."""
    for who in (A, B):
        if rec.get("username") == who["sub"]:
            return who
    return None


def check_identity(where, rec, who, groups, roles):
    """rec's identity fields equal what `who` sent; groups/roles are the decoded arrays."""
    for k in ("subject", "username"):
        if rec[k] != who["sub"]:
            fail(f"{where}: {k} {rec[k]!r} != {who['sub']!r}")
    for k in ("name", "email"):
        if rec[k] != who[k]:
            fail(f"{where}: {k} {rec[k]!r} != {who[k]!r}")
    if groups != who["groups"]:
        fail(f"{where}: groups {groups!r} != {who['groups']!r}")
    if roles != who["roles"]:
        fail(f"{where}: roles {roles!r} != {who['roles']!r}")


def check_common(where, keys, rec):
    if keys[:3] != ["time", "level", "msg"]:
        fail(f"{where}: the first fields are {keys[:3]}, not time, level, msg")
    if not TIME_RE.match(rec["time"]):
        fail(f"{where}: time {rec['time']!r} is not YYYY-MM-DDTHH:MM:SS.uuuuuuZ")
    if rec["level"] not in ("info", "warning", "error"):
        fail(f"{where}: level {rec['level']!r}")


def check_intents(where, rec, params, seen):
    """An intent's params: the labels exactly as sent."""
    if rec["msg"] != "Intent" or not isinstance(params, dict):
        return
    labels = params.get("labels")
    if labels == LABELS:
        seen["labels"] += 1
    elif labels == BAD_LABELS:
        seen["bad_labels"] += 1
    elif params.get("name", "").endswith(("-a", "-b", "-bad")):
        fail(f"{where}: labels {labels!r} are not what was sent ({LABELS!r} or {BAD_LABELS!r})")


def check_logfmt(decoded_file, show_audit_file, show_access_file):
    records = [json.loads(l) for l in open(decoded_file, encoding="utf-8")]
    seen = {"A": 0, "B": 0, "labels": 0, "bad_labels": 0, "auth_failed": 0, "sealed": 0}
    by_log = {"audit": [], "access": []}
    for r in records:
        where = f"{r['file']} line {r['line']}"
        keys = [k for k, _ in r["fields"]]
        rec = dict(r["fields"])
        check_common(where, keys, rec)
        log = "audit" if "volguard-audit.log" in r["file"] else "access"
        by_log[log].append(rec)
        if log == "audit" and not re.fullmatch(r"[1-9][0-9]*", rec.get("seq", "")):
            fail(f"{where}: audit record without a numeric seq")
        if rec.get("sealed") == "true":
            seen["sealed"] += 1
        if rec["msg"] == "Authentication failed":
            seen["auth_failed"] += 1
            if rec["reason"] != "username_invalid":
                fail(f"{where}: reason {rec['reason']!r}")
        who = identity_of(rec)
        if who is None:
            continue
        seen["A" if who is A else "B"] += 1
        # logfmt writes roles and groups as JSON arrays in a quoted value.
        try:
            groups, roles = json.loads(rec["groups"]), json.loads(rec["roles"])
        except ValueError as e:
            fail(f"{where}: groups/roles are not JSON arrays ({e}): {rec['groups']!r}")
        check_identity(where, rec, who, groups, roles)
        if "params" in rec:
            check_intents(where, rec, json.loads(rec["params"]), seen)
    for k, least in (("A", 6), ("B", 4), ("labels", 2), ("bad_labels", 1), ("auth_failed", 1),
                     ("sealed", 1)):
        if seen[k] < least:
            fail(f"logfmt: {seen[k]} records of kind {k}, at least {least} expected ({seen})")
    # volguard's own parser (audit show) reads exactly what go-logfmt read, record by record.
    for log, show_file in (("audit", show_audit_file), ("access", show_access_file)):
        shown = json.load(open(show_file, encoding="utf-8"))
        if len(shown) != len(by_log[log]):
            fail(f"{log}: audit show read {len(shown)} records, go-logfmt {len(by_log[log])}")
        for i, (ours, theirs) in enumerate(zip(shown, by_log[log])):
            if ours != theirs:
                diff = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs)
                        if ours.get(k) != theirs.get(k)}
                fail(f"{log} record {i + 1}: volguard's parser and go-logfmt differ: {diff}")
    print(f"logfmt: {len(records)} records decoded by go-logfmt as sent ({seen}); "
          f"volguard's parser agrees on all of them")


def check_json(files):
    seen = {"A": 0, "B": 0, "labels": 0, "bad_labels": 0, "auth_failed": 0, "sealed": 0,
            "genesis": 0, "started": 0}
    n = 0
    for f in files:
        text = open(f, "rb").read().decode("utf-8")
        if not text.endswith("\n"):
            fail(f"{f}: torn last line")
        for i, line in enumerate(text[:-1].split("\n")):
            where = f"{f} line {i + 1}"
            pairs = json.loads(line, object_pairs_hook=lambda p: p)
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
                fail(f"{where}: a key appears twice")  # (keys of nested objects: json.loads)
            rec = json.loads(line)
            check_common(where, keys, rec)
            n += 1
            audit = "volguard-audit.log" in f
            if audit and not (type(rec.get("seq")) is int and rec["seq"] > 0):
                fail(f"{where}: seq {rec.get('seq')!r} is not a number")
            if not audit and not isinstance(rec.get("duration_ms"), (int, float)):
                fail(f"{where}: duration_ms {rec.get('duration_ms')!r} is not a number")
            for k in ("retained_from",):
                if k in rec and type(rec[k]) is not int:
                    fail(f"{where}: {k} {rec[k]!r} is not a number")
            for k in ("genesis", "sealed", "security_enabled", "guest_access", "audit_fail_closed"):
                if k in rec and type(rec[k]) is not bool:
                    fail(f"{where}: {k} {rec[k]!r} is not a boolean")
            for k in ("roles", "groups", "issuers", "admin_groups"):
                if k in rec and not (isinstance(rec[k], list) and all(isinstance(x, str) for x in rec[k])):
                    fail(f"{where} ({rec['msg']}): {k} {rec[k]!r} is not an array of strings")
            if rec["msg"] == "Intent" and not isinstance(rec.get("params"), dict):
                fail(f"{where}: an intent's params {rec.get('params')!r} is not an object")
            seen["genesis"] += rec.get("genesis") is True
            seen["sealed"] += rec.get("sealed") is True
            seen["started"] += rec["msg"] == "Server started"
            if rec["msg"] == "Authentication failed":
                seen["auth_failed"] += 1
                if rec.get("groups") != [] or rec.get("roles") != []:
                    fail(f"{where}: no caller: roles and groups are empty arrays, not "
                         f"{rec.get('roles')!r} {rec.get('groups')!r}")
            who = identity_of(rec)
            if who is None:
                continue
            seen["A" if who is A else "B"] += 1
            check_identity(where, rec, who, rec["groups"], rec["roles"])
            if "params" in rec:
                check_intents(where, rec, rec["params"], seen)
    for k, least in (("A", 6), ("B", 4), ("labels", 2), ("bad_labels", 1), ("auth_failed", 1),
                     ("sealed", 1), ("genesis", 1), ("started", 1)):
        if seen[k] < least:
            fail(f"json: {seen[k]} records of kind {k}, at least {least} expected ({seen})")
    print(f"json: {n} lines typed and as sent ({seen})")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "drive":
        drive(*args)
    elif cmd == "crash-create":
        crash_create(*args)
    elif cmd == "check-logfmt":
        check_logfmt(*args)
    elif cmd == "check-json":
        check_json(args)
    else:
        fail(f"unknown command {cmd}")
