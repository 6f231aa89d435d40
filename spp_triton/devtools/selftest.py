"""One command that says whether the Triton kernels are right here, and how fast they are.

    python -m spp_triton.devtools.selftest [--quick] [--no-bench]     (or: make selftest)

With CUDA: the compiled Triton kernels against the torch backend (the C++ CPU kernel,
on copies of the same inputs) at realistic shapes: FPN levels of an 800 x 1216 image
(4 levels, C = 256), K = 128 and 2000 RPN-like proposals, float32 / float16 /
bfloat16, max and avg, both projections and SPP-Align (sampling="bilinear", r = 2),
deterministic backward off and on. Max mode must agree bit for bit (values and
argmax), avg within float32 rounding, gradients within accumulation rounding;
deterministic gradients must be bit-identical over two runs. Then the operator benchmark, ``benchmarks/speed/bench_spp_roi_pool.py`` of the checkout
(``triton.testing.do_bench``): spp_roi_pool, with and without the deterministic
backward, against mmdet's ``SingleRoIExtractor`` with mmcv ``RoIAlign`` 7x7 and
``RoIPool`` 7x7, one table (the mmcv rows skipped, with the reason on one line, where
mmcv was built without CUDA ops).

Without CUDA it is a smoke test (under 3 minutes on 2 cores): it says so, runs the same
comparison on small shapes in Triton's interpreter (a child process with
TRITON_INTERPRET=1) for every mode and geometry in float32 plus one float16 and one
bfloat16 case (``SMOKE_CASES``), and says what it skipped: the other dtype cases, the
memory-traffic counts (``make traffic``), realistic shapes and the benchmark. The full
interpreter checks live in ``make test``; ``--full`` runs all 18 cases and the traffic
counts here. Exits non-zero on any mismatch.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import torch


# The window geometries checked, by the name the table shows: (projection, sampling);
# bilinear windows are continuous, so their spec's projection is a placeholder.
GEOMETRIES = {"sppnet": ("sppnet", "cells"), "round": ("round", "cells"), "bilinear": ("sppnet", "bilinear")}


def _check_case(feats, rois, levels, scales, mode, geometry, dtype, device) -> dict:
    """Triton on ``device`` against the torch backend on the CPU, one configuration;
    ``geometry`` names a GEOMETRIES entry ("bilinear": SPP-Align, sampling_ratio 2, aligned)."""
    from .. import torch_backend, triton_backend
    from ..geometry import PoolSpec

    projection, sampling = GEOMETRIES[geometry]
    spec = PoolSpec.make((1, 2, 3, 6), mode, projection, scales, sampling)
    cpu = [f.to("cpu", dtype) for f in feats]
    dev = [f.to(device, dtype) for f in feats]
    rois_d, levels_d = rois.to(device), levels.to(device)
    out, argmax = triton_backend.forward(dev, rois_d, levels_d, spec)
    want, want_arg = torch_backend.forward(cpu, rois.cpu(), levels.cpu(), spec)
    if mode == "max":
        fwd_ok = torch.equal(out.cpu(), want) and torch.equal(argmax.cpu(), want_arg)
        fwd_err = 0.0 if fwd_ok else float((out.cpu().float() - want.float()).abs().max())
    else:
        fwd_err = float((out.cpu().float() - want.float()).abs().max())
        fwd_ok = fwd_err <= (1e-5 if dtype == torch.float32 else 2e-2) * max(1.0, float(want.abs().max()))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    ref = torch_backend.backward(grad, want_arg, cpu, rois.cpu(), levels.cpu(), spec)
    row = dict(mode=mode, projection=geometry, dtype=str(dtype).replace("torch.", ""), k=rois.shape[0],
               forward="ok" if fwd_ok else f"MISMATCH ({fwd_err:.2e})")
    meta = [f.to("meta") for f in dev]
    ok = fwd_ok
    for det in (False, True):
        runs = [triton_backend.backward(grad.to(device), argmax, meta, rois_d, levels_d, spec, det)
                for _ in range(2 if det else 1)]
        err = max(float((g.cpu().float() - r.float()).abs().max() / max(1.0, float(r.abs().max().float())))
                  for g, r in zip(runs[0], ref))
        good = err <= (1e-5 if dtype == torch.float32 else 2e-2)
        if det:
            same = all(torch.equal(a, b) for a, b in zip(*runs))
            good = good and same
            row["backward deterministic"] = ("ok" if good else "MISMATCH") + f" ({err:.1e}" + \
                ("" if same else ", NOT bit-identical") + ")"
        else:
            row["backward atomic"] = ("ok" if good else "MISMATCH") + f" ({err:.1e})"
        ok = ok and good
    row["ok"] = ok
    return row


ALL_CASES = tuple(itertools.product(("max", "avg"), GEOMETRIES, (torch.float32, torch.float16, torch.bfloat16)))
# Without a GPU: every mode and geometry once, and each half-precision dtype once.
SMOKE_CASES = tuple(itertools.product(("max", "avg"), GEOMETRIES, (torch.float32,))) + (
    ("max", "bilinear", torch.bfloat16), ("avg", "sppnet", torch.float16))


def check(device, ks, channels: int, image, cases=ALL_CASES) -> list[dict]:
    from .workloads import fpn_inputs

    rows = []
    for k in ks:
        feats, rois, levels, scales = fpn_inputs(k, channels, seed=k, image=image)
        for mode, geometry, dtype in cases:
            t = time.perf_counter()
            row = _check_case(feats, rois, levels, scales, mode, geometry, dtype, device)
            row["seconds"] = round(time.perf_counter() - t, 2)
            print(" | ".join(f"{v}" for key, v in row.items() if key != "ok"), flush=True)
            rows.append(row)
    return rows


def _markdown(rows) -> str:
    keys = [k for k in rows[0] if k != "ok"]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def benchmark(quick: bool) -> int:
    """The operator benchmark (``benchmarks/speed/bench_spp_roi_pool.py`` of the repository:
    spp_roi_pool against mmdet's extractors with mmcv RoIAlign / RoIPool, do_bench on
    CUDA), run as it is; its exit status."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "speed" / "bench_spp_roi_pool.py"
    if not script.exists():
        print(f"(no benchmark: {script} is part of the repository checkout, not of the installed package)")
        return 0
    ks = ["512"] if quick else ["128", "512", "2000"]
    return subprocess.run([sys.executable, str(script), "--device", "cuda", "--no-traffic", "--ks", *ks]).returncode


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer and smaller shapes")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    p.add_argument("--full", action="store_true",
                   help="without CUDA: all 18 interpreter cases and the traffic counts (slow: 10+ minutes)")
    p.add_argument("--interpreted", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.interpreted or os.environ.get("TRITON_INTERPRET") == "1":
        cases = ALL_CASES if a.full else SMOKE_CASES
        print(f"Triton's interpreter, CPU tensors, small shapes (K = 24, C = 8, FPN of a 200 x 304 image), "
              f"{len(cases)} cases:", flush=True)
        rows = check(torch.device("cpu"), (24,), 8, (200, 304), cases)
        print("\n" + _markdown(rows))
        return 0 if all(r["ok"] for r in rows) else 1
    if not torch.cuda.is_available():
        start = time.perf_counter()
        what = "all 18 cases, then the memory-traffic counts" if a.full else \
            f"a smoke test of {len(SMOKE_CASES)} of the 18 cases"
        print("No CUDA device: the compiled Triton kernels cannot run here. Running the same checks in "
              f"Triton's interpreter on small shapes instead (no timings): {what}.\n", flush=True)
        env = dict(os.environ, TRITON_INTERPRET="1")
        cmd = [sys.executable, "-m", "spp_triton.devtools.selftest", "--interpreted"] + (["--full"] if a.full else [])
        rc = subprocess.run(cmd, env=env).returncode
        if a.full and not a.no_bench:
            from .load_counter import format_report, interpreted_report

            print("\nMemory traffic, counted in the interpreter:\n\n" + format_report(interpreted_report(quick=a.quick)))
        print(f"\nself-test (interpreter, no GPU timings) {'PASSED' if rc == 0 else 'FAILED'} in "
              f"{time.perf_counter() - start:.0f} s.")
        if not a.full:
            print("Checked: Triton (interpreted) against the torch backend, forward values and argmax, atomic and "
                  "deterministic backward, for max and avg with the sppnet, round and bilinear geometries in "
                  "float32, plus bilinear max in bfloat16 and sppnet avg in float16.\n"
                  "Skipped here: the 10 other dtype cases and the memory-traffic counts (`--full`, or `make test` "
                  "and `make traffic`), realistic shapes and the benchmark (they need a GPU).")
        return rc
    name = torch.cuda.get_device_name()
    ks = (128,) if a.quick else (128, 2000)
    print(f"CUDA device: {name}. Compiled Triton kernels against the torch backend (C++ on the CPU), "
          f"FPN of an 800 x 1216 image, C = 256:\n", flush=True)
    rows = check(torch.device("cuda"), ks, 256, (800, 1216))
    print("\n" + _markdown(rows))
    ok = all(r["ok"] for r in rows)
    if not a.no_bench:
        print(f"\nOperator benchmark on {name} (triton.testing.do_bench medians):\n", flush=True)
        ok = benchmark(a.quick) == 0 and ok
    print("\nself-test " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
