"""The benchmarks' shared runner and writers, and that every benchmark script imports.

The scripts themselves take minutes to hours (and trained checkpoints), so ``make test``
runs none of them; it checks the pieces they all stand on and that each script loads
with the modules it names at import time.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").rglob("*.py") if p.name != "common.py")


@pytest.fixture(scope="module")
def common():
    """benchmarks/common.py as a module of its own; the import path it extends for the
    scripts is put back, so that no other test imports a benchmark by accident."""
    import importlib.util

    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("benchmarks_common", ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path[:] = saved
    return module


@pytest.fixture
def clock(common, monkeypatch):
    """``common``'s perf_counter replaced by a clock that each row's call moves on by the
    seconds the row says: timings without a time assertion."""
    now = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: now[0])

    def row(key, seconds):
        def call():
            calls.append(key)
            now[0] += next(seconds)
        return call

    calls = []
    return row, calls


def test_interleaved_calls_every_row_once_per_round_in_turn_and_skips_the_warm_up(common, clock):
    row, calls = clock
    fns = {"a": row("a", iter([100.0, 1.0, 3.0, 2.0])), "b": row("b", iter([100.0, 5.0, 4.0, 6.0]))}
    assert common.interleaved(fns, rounds=3, warmup=1) == {"a": 2.0, "b": 5.0}
    assert calls == ["a", "b"] * 4


def test_interleaved_takes_the_median_of_each_part_a_row_times_itself(common):
    samples = iter([{"x": 9.0, "y": 0.0}, {"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 5.0}, {"x": 2.0, "y": 4.0}])
    medians = common.interleaved({"row": lambda: next(samples)}, rounds=3, warmup=1, parts=True)
    assert medians == {"row": {"x": 2.0, "y": 4.0}}  # the warm-up's 9.0 and 0.0 are not counted


def test_interleaved_hands_the_counted_samples_to_its_summary(common, clock):
    row, _ = clock
    assert common.interleaved({"a": row("a", iter([7.0, 3.0, 1.0]))}, rounds=2, summary=list) == {"a": [3.0, 1.0]}
    assert common.median_time(row("b", iter([9.0, 4.0, 8.0, 5.0])), reps=3) == 5.0  # after one warm-up call


def test_markdown_table_has_a_header_a_rule_and_one_line_per_row(common):
    assert common.markdown_table(["a", "b"], [[1, "x"], [2.5, ""]]).splitlines() == [
        "| a | b |", "| --- | --- |", "| 1 | x |", "| 2.5 |  |"]


def test_config_path_finds_a_config_by_name_in_any_folder_and_refuses_an_unknown_one(common):
    assert common.config_path("sppnet_r50_voc") == ROOT / "configs" / "sppnet_r50_voc.py"
    assert common.config_path("sppnet_r18-w16_fpn_24e_synth-voc").parent.name == "synth_demo"
    with pytest.raises(FileNotFoundError, match="no_such_config"):
        common.config_path("no_such_config")


def test_every_benchmark_script_imports_and_has_a_main_and_a_docstring():
    """One interpreter imports every script as its own module (what ``python script.py``
    does before ``main()``), so a name or import that a refactor broke fails here."""
    code = "\n".join([
        "import importlib.util, sys",
        "for path in sys.argv[1:]:",
        "    name = path.rsplit('/', 1)[-1][:-3]",
        "    spec = importlib.util.spec_from_file_location(name, path)",
        "    module = sys.modules[name] = importlib.util.module_from_spec(spec)",
        "    spec.loader.exec_module(module)",
        "    assert module.__doc__ and module.__doc__.strip(), path",
        "    assert callable(getattr(module, 'main', None)) or path.endswith('runs.py'), path",
        "print('imported', len(sys.argv) - 1)"])
    done = subprocess.run([sys.executable, "-c", code, *map(str, SCRIPTS)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imported {len(SCRIPTS)}" in done.stdout


def test_a_quick_run_writes_beside_the_committed_figures_never_over_them(common):
    import argparse

    assert common.result("scaling.csv", argparse.Namespace(quick=False)) == ROOT / "benchmarks/results/scaling.csv"
    assert common.result("sliced_trees_test.jpg", argparse.Namespace(quick=True)).name == "sliced_trees_test_quick.jpg"
    assert common.result("rcnn_vs_sppnet", argparse.Namespace(quick=True)).name == "rcnn_vs_sppnet_quick"
    assert "--quick" not in common.parser("doc", quick=False).format_help()
