"""The tools that keep a newcomer informed: the heartbeat around long commands, the gap
meter that checks it, and compile_check's reuse of a verified result (keyed so that a
changed kernel always compiles again)."""
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import heartbeat  # noqa: E402


def test_ninja_progress_counts_the_plans_object_files(tmp_path):
    build = tmp_path / "pip-install-x" / "mmcv" / "build" / "temp.linux"
    (build / "ops").mkdir(parents=True)
    (build / "build.ninja").write_text("rule compile\n  command = c++ $in\n"
                                       "build /abs/ops/a.o: compile a.cpp\nbuild ops/b.o: compile b.cpp\n"
                                       "build ops/c.o: compile c.cpp\nbuild ops/lib.so: link ops/a.o\n")
    (build / "ops" / "b.o").write_bytes(b"")
    assert heartbeat.ninja_progress(tmp_path) == (1, 3)
    (build / "ops" / "c.o").write_bytes(b"")
    assert heartbeat.ninja_progress(tmp_path) == (2, 3)
    assert heartbeat.ninja_progress(tmp_path / "nothing-yet") is None
    line = heartbeat.heartbeat_line("mmcv build", 125, (2, 3))
    assert "2 min 05 s" in line and "2/3 compile units done" in line and "left" in line


def test_a_silent_command_gets_heartbeat_lines_and_keeps_its_exit_code():
    cmd = [sys.executable, str(ROOT / "scripts" / "heartbeat.py"), "--label", "quiet", "--every", "0.5", "--",
           sys.executable, "-c", "import sys, time; print('start', flush=True); time.sleep(2.5); sys.exit(3)"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    lines = proc.stdout.splitlines()
    assert lines[0] == "start"
    assert sum("quiet:" in ln and "still running" in ln for ln in lines) >= 2
    assert "failed (exit 3)" in lines[-1]


def test_line_gaps_measures_the_longest_silence(tmp_path):
    producer = subprocess.Popen([sys.executable, "-c", "import time; print('a', flush=True); time.sleep(1.5); "
                                 "print('b\\rc', flush=True)"], stdout=subprocess.PIPE)
    meter = subprocess.run([sys.executable, str(ROOT / "scripts" / "line_gaps.py"), "--log", str(tmp_path / "log"),
                            "--limit", "1", "--json", str(tmp_path / "gaps.json")], stdin=producer.stdout,
                           capture_output=True, timeout=60)
    producer.wait()
    result = json.loads((tmp_path / "gaps.json").read_text())
    assert meter.returncode == 1  # the 1.5 s silence is over the 1 s limit
    assert result["lines"] == 3 and result["max_gap_s"] >= 1.4 and result["gap_ended_at"] == "b"
    assert (tmp_path / "log").read_bytes() == meter.stdout == b"a\nb\rc\n"


@pytest.fixture
def compile_check(tmp_path, monkeypatch):
    pytest.importorskip("triton", reason="compile_check needs triton")
    cc = importlib.import_module("spp_triton.devtools.compile_check")
    copy = tmp_path / "spp_triton"
    for name in cc._INPUT_SOURCES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "spp_triton" / name, copy / name)
    real = cc._fingerprint()
    monkeypatch.setattr(cc, "__file__", str(copy / "devtools" / "compile_check.py"))
    assert cc._fingerprint() == real  # the copy fingerprints as the real sources
    return cc, copy, real


@pytest.mark.parametrize("source", ["triton_backend/cells_kernels.py", "triton_backend/align_kernels.py",
                                    "triton_backend/shared_kernels.py", "geometry.py", "devtools/compile_check.py"])
def test_a_changed_kernel_source_is_compiled_again(compile_check, source):
    cc, copy, real = compile_check
    path = copy / source
    path.write_text(path.read_text() + "\n# one more line\n")
    changed = cc._fingerprint()
    assert changed != real
    assert cc._load_verified(changed) == {}  # the committed rows do not apply to it


def test_the_verified_result_has_a_row_for_every_variant_when_it_applies(compile_check):
    cc, _, real = compile_check
    rows = cc._load_verified(real)
    if not rows:
        pytest.skip("the committed compile_check_verified.json is for other sources or another Triton/ptxas: "
                    "make test compiles and rewrites it")
    items = [(*v, target) for v in cc._variants(4) for target in cc.TARGETS]
    assert set(rows) == {cc._item_key(it) for it in items}
    assert not [r for r in rows.values() if r["error"]]


def test_dots_within_a_line_do_not_hold_the_heartbeat_back():
    script = ("import sys, time\n"
              "for _ in range(12):\n"
              "    sys.stdout.write('.'); sys.stdout.flush(); time.sleep(0.25)\n"
              "print(' [100%]')\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "heartbeat.py"), "--label", "dots", "--every", "1", "--",
           sys.executable, "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    beats = [ln for ln in out.splitlines() if "dots:" in ln and "still running" in ln]
    assert beats and all(ln.startswith("    ... dots:") for ln in beats)  # on a line of its own
    assert out.count(".") - sum(ln.count(".") for ln in beats) >= 12


def test_importing_compile_check_leaves_the_interpreter_on():
    """Importing the module (as the tests above do) must not turn TRITON_INTERPRET off for
    the process: the Triton tests that run after it in the same process need it (a fresh
    machine's `make test` with TEST_WORKERS=0 once failed 25 of them that way)."""
    code = ("import os, spp_triton.devtools.compile_check as cc; "
            "assert os.environ.get('TRITON_INTERPRET') == '1', 'popped on import'; "
            "import spp_triton.triton_backend.shared_kernels; "
            "cc.main(['--jobs', '1'])")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "popped on import" not in done.stderr
    # main() in a process whose kernels were decorated for the interpreter refuses, naming the way out.
    assert done.returncode != 0 and "run it in a process of its own" in done.stderr, done.stderr[-2000:]
