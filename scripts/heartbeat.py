"""Run a long command and print a heartbeat line at least once a minute.

    python scripts/heartbeat.py --label "mmcv build" [--every 45] [--ninja-under DIR] -- CMD ...

The command's own output passes through unchanged, as it comes. After every ``--every``
seconds without a line end (silence, or a test runner's dots within one line), one line says how long the command has run and, with
``--ninja-under``, how many of its compile units are done: the ``.o`` files that exist
beside the ``build.ninja`` found under DIR, out of the ``build ... .o:`` rules that
file lists (the build's own plan, not a guess). Exits with the command's exit code.
Standard library only: it runs before anything else is installed.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

_RULE = re.compile(r"^build (\S+\.o):", re.M)


def ninja_progress(root: Path) -> tuple[int, int] | None:
    """(done, total) compile units of the newest build.ninja under ``root``, or None
    before the build has written one."""
    plans = sorted(root.glob("**/build.ninja"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not plans:
        return None
    plan = plans[-1]
    try:
        outputs = _RULE.findall(plan.read_text())
    except OSError:
        return None
    done = sum(1 for o in outputs if (plan.parent / o.replace("$:", ":").replace("$ ", " ")).exists())
    return done, len(outputs)


def _minutes(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def heartbeat_line(label: str, elapsed: float, progress: tuple[int, int] | None) -> str:
    line = f"    ... {label}: {_minutes(elapsed)}"
    if progress is not None:
        done, total = progress
        line += f", {done}/{total} compile units done"
        if 0 < done < total:
            line += f", about {_minutes(elapsed / done * (total - done))} left"
    return line + " (still running)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label", required=True)
    # 45 s, not 60: a line must come within a minute, and the check runs once a second.
    p.add_argument("--every", type=float, default=45.0, help="seconds of silence before a heartbeat line")
    p.add_argument("--ninja-under", type=Path, help="folder under which the build writes build.ninja")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        p.error("no command given after --")
    start = time.monotonic()
    last = [start]
    lock = threading.Lock()
    # PYTHONUNBUFFERED: a Python child (pip, pytest) writing to a pipe would otherwise hold
    # its lines back in a buffer for minutes.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    mid_line = [False]  # the last byte passed through was not a line end

    def beat():
        while proc.poll() is None:
            time.sleep(1.0)
            with lock:
                now = time.monotonic()
                if now - last[0] >= a.every:
                    progress = ninja_progress(a.ninja_under) if a.ninja_under else None
                    print(("\n" if mid_line[0] else "") + heartbeat_line(a.label, now - start, progress), flush=True)
                    last[0], mid_line[0] = now, False

    threading.Thread(target=beat, daemon=True).start()
    out = sys.stdout.buffer
    while chunk := os.read(proc.stdout.fileno(), 65536):
        with lock:  # chunks, not lines: a test runner's dots show as they come
            out.write(chunk)
            out.flush()
            # Silence is counted from the last line end: dots that a test runner writes
            # within one line do not make a line, so they do not hold the heartbeat back.
            if b"\n" in chunk or b"\r" in chunk:
                last[0] = time.monotonic()
            mid_line[0] = chunk[-1:] not in (b"\n", b"\r")
    rc = proc.wait()
    print(f"    ... {a.label}: {'done' if rc == 0 else f'failed (exit {rc})'} after {_minutes(time.monotonic() - start)}",
          flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
