#!/usr/bin/env python3
"""Turns the README's ```sh blocks into one bash script, in order, so that the README runs as
written (tests/readme/readme_test.sh). A block whose previous line is
`<!-- readme-test: skip (why) -->` is left out (the why is required). A line ending in
`# exit N ...` becomes `expect_exit N <the command>`: the command must exit with N.
Usage: extract_blocks.py README.md > script.sh   (prints the block count on stderr)"""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read().split("\n")
out, blocks, skipped, i = [], 0, 0, 0
while i < len(text):
    line = text[i]
    if line.strip() == "```sh":
        prev = text[i - 1].strip() if i > 0 else ""
        end = text.index("```", i + 1)
        body = text[i + 1:end]
        if prev.startswith("<!-- readme-test: skip"):
            if not re.match(r"<!-- readme-test: skip \(.+\) -->$", prev):
                sys.exit(f"README.md:{i}: a skipped block must say why: {prev}")
            skipped += 1
        else:
            blocks += 1
            out.append(f"echo '--- README.md:{i + 2}' >&2")
            for n, b in enumerate(body):
                m = re.match(r"^(?P<cmd>[^#\\]*?\S)\s+#\s*exit (?P<rc>\d+)\b", b)
                if m and not b.rstrip().endswith("\\"):
                    out.append(f"expect_exit {m['rc']} {m['cmd']}")
                else:
                    out.append(b)
        i = end + 1
        continue
    i += 1
print("\n".join(out))
print(f"{blocks} blocks run, {skipped} skipped", file=sys.stderr)
