"""Pass a command's output through and measure the longest silence between two lines.

    CMD 2>&1 | python scripts/line_gaps.py --log FILE [--limit 60] [--json OUT]

Copies stdin to stdout and to FILE, and on EOF prints (and with ``--json`` writes) the
longest gap between two consecutive lines, where it ended, and the line count. A
carriage return counts as a line end too: a progress bar redrawn in place is output a
person sees. Exits 1 if the longest gap exceeds ``--limit`` seconds. Standard library
only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", required=True)
    p.add_argument("--limit", type=float, default=60.0)
    p.add_argument("--json")
    a = p.parse_args(argv)
    start = last = time.monotonic()
    worst, worst_after, lines, current = 0.0, "", 0, bytearray()
    stdin = sys.stdin.buffer
    with open(a.log, "wb") as log:
        while True:
            chunk = stdin.read1(65536)
            if not chunk:
                break
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            log.write(chunk)
            log.flush()  # the log is readable while the command runs
            for byte in chunk:
                if byte in (10, 13):
                    now = time.monotonic()
                    if now - last > worst:
                        worst, worst_after = now - last, current.decode(errors="replace").strip()[:160]
                    last, lines = now, lines + 1
                    current.clear()
                else:
                    current.append(byte)
    now = time.monotonic()
    if now - last > worst:  # silence before EOF counts too
        worst, worst_after = now - last, "(end of output)"
    result = dict(wall_s=round(now - start, 1), lines=lines, max_gap_s=round(worst, 1), gap_ended_at=worst_after)
    print(f"\n[line_gaps] {lines} lines in {result['wall_s']} s; longest silence {result['max_gap_s']} s, "
          f"ended by: {worst_after!r}", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)
    return 1 if worst > a.limit else 0


if __name__ == "__main__":
    sys.exit(main())
