"""Compile every Triton kernel ahead of time for sm_80 and sm_90, without a GPU.

    python -m spp_triton.compile_check [--jobs J] [--levels L]

For each kernel variant (forward nested max, forward direct max, forward avg, backward
atomic max/avg, backward deterministic max/avg), each dtype (the features' dtype for the
forward, grad_out's for the backward), each GPU autotune config (the full list, not the
interpreter's single one) with the "round" projection (plus the first config with
"sppnet"), and each target, it runs

    triton.compile(ASTSource(fn=<the JITFunction under the autotuner>, signature=...,
                             constexprs=...), target=GPUTarget("cuda", cc, 32),
                   options={"num_warps": ..., "enable_fp_fusion": False})

(pointers are given the 16-byte alignment hint of a usual launch), then reads the
register count, spills and stack of the cubin from ``ptxas -v`` on the generated PTX
(the ptxas that triton itself uses for that target; ``cuobjdump -res-usage`` on the cubin
if that fails: REG and LOCAL), and counts ``fma`` instructions in the PTX (there must be
none: the window projection needs two roundings). Prints a table; exits non-zero on any
compile failure, spill, local memory or fma.

TRITON_INTERPRET is removed from the environment first: this must compile, not interpret.
"""
from __future__ import annotations

import os

os.environ.pop("TRITON_INTERPRET", None)  # before triton is imported (here or in workers)

import argparse  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

TARGETS = (80, 90)
DTYPES = ("fp32", "fp16", "bf16")
_FWD_SCALARS = ("N", "C", "B")
_BWD_SCALARS = ("N", "C", "B", "K")


def _variants(num_levels: int):
    """(kernel name, label, dtype, config list, config index, num_warps, signature, constexprs).

    Every config with the "round" projection (PROJ=1: ``x * s + 0.5``, where a fused
    multiply-add would change the result, so the fma count below means something), and
    the first config of each kernel/dtype with "sppnet" (PROJ=0) too.
    """
    for v in _configs_matrix(num_levels):
        yield (*v[:-1], dict(v[-1], PROJ=1))
        if v[4] == 0:
            yield (*v[:-1], dict(v[-1], PROJ=0))


def _configs_matrix(num_levels: int):
    from . import triton_kernels as kern

    L = num_levels
    fwd_cfgs = {"nested": kern.nested_forward_configs(interpret=False),
                "direct": kern.direct_forward_configs(interpret=False)}
    for label, g, is_max, cfg_name in (("fwd_nested_max", 6, True, "nested"),
                                       ("fwd_direct_max", 0, True, "direct"),
                                       ("fwd_direct_avg", 0, False, "direct")):
        for dt in DTYPES:
            for ci, cfg in enumerate(fwd_cfgs[cfg_name]):
                sig = {"feats": (f"*{dt}",) * L, "heights": ("i32",) * L, "widths": ("i32",) * L,
                       "rois_ptr": "*fp32", "levels_ptr": "*i32", "scales_ptr": "*fp32",
                       "table_ptr": "*i32", "out_ptr": f"*{dt}", "argmax_ptr": "*i32",
                       **{s: "i32" for s in _FWD_SCALARS}}
                const = dict(NUM_LEVELS=L, G=g, GG_PAD=64 if g else 1, IS_MAX=is_max, **cfg.kwargs)
                yield ("spp_fwd_kernel", label, dt, cfg_name, ci, cfg.num_warps, sig, const)
    bwd_cfgs = kern.backward_configs(interpret=False)
    for name, label in (("spp_bwd_atomic_kernel", "bwd_atomic"), ("spp_bwd_deterministic_kernel", "bwd_determ")):
        for is_max in (True, False):
            for dt in DTYPES:
                for ci, cfg in enumerate(bwd_cfgs):
                    sig = {"grad_ptr": "*fp32", "grad_out_ptr": f"*{dt}", "argmax_ptr": "*i32",
                           "rois_ptr": "*fp32", "levels_ptr": "*i32", "scales_ptr": "*fp32",
                           "table_ptr": "*i32", "heights": ("i32",) * L, "widths": ("i32",) * L,
                           "level_off": ("i64",) * L, **{s: "i32" for s in _BWD_SCALARS}}
                    const = dict(NUM_LEVELS=L, IS_MAX=is_max, **cfg.kwargs)
                    yield (name, f"{label}_{'max' if is_max else 'avg'}", dt, "backward", ci,
                           cfg.num_warps, sig, const)


def _jit_fn(name):
    from . import triton_kernels as kern

    fn = getattr(kern, name)
    while not hasattr(fn, "arg_names") or hasattr(fn, "configs"):  # unwrap autotuners
        fn = fn.fn
    return fn


def _ptxas_usage(ptx: str, cc: int):
    """(registers, spill bytes (stores + loads), stack bytes) from ``ptxas -v``."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [get_ptxas(cc).path, "-v", "--fmad=false", "--regAllocOptLevel=2",
               f"--gpu-name={sm_arch_from_capability(cc)}", src, "-o", os.path.join(d, "k.cubin")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return regs, int(m.group(2)) + int(m.group(3)), int(m.group(1))


def _cuobjdump_usage(cubin: bytes):
    """(registers, local bytes, stack bytes) from ``cuobjdump -res-usage``."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        out = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    regs = int(re.search(r"REG:(\d+)", out).group(1))
    return regs, int(re.search(r"LOCAL:(\d+)", out).group(1)), int(re.search(r"STACK:(\d+)", out).group(1))


def _compile_one(item):
    name, label, dt, cfg_name, ci, warps, sig, const, cc = item
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _jit_fn(name)
    row = dict(kernel=label, dtype=dt, proj=("sppnet", "round")[const["PROJ"]],
               config=f"C{const['BLOCK_C']}/X{const['BLOCK_X']}/w{warps}",
               target=f"sm_{cc}", regs="-", spills="-", stack="-", shared="-", fma="-", error=None)
    t0 = time.time()
    try:
        attrs = {}
        for i, arg in enumerate(fn.arg_names):
            ty = sig.get(arg)
            if isinstance(ty, tuple):
                attrs.update({(i, j): [["tt.divisibility", 16]] for j, t in enumerate(ty) if t.startswith("*")})
            elif isinstance(ty, str) and ty.startswith("*"):
                attrs[(i,)] = [["tt.divisibility", 16]]
        full_sig = {**sig, **{k: "constexpr" for k in const}}
        src = ASTSource(fn=fn, signature=full_sig, constexprs=const, attrs=attrs)
        k = triton.compile(src, target=GPUTarget("cuda", cc, 32),
                           options={"num_warps": warps, "enable_fp_fusion": False})
        ptx = k.asm["ptx"]
        regs, spills, stack = getattr(k, "n_regs", None), getattr(k, "n_spills", None), 0
        if regs is None or spills is None:
            try:
                regs, spills, stack = _ptxas_usage(ptx, cc)
            except Exception:  # noqa: BLE001  (fall back to the cubin's resource table)
                regs, spills, stack = _cuobjdump_usage(k.asm["cubin"])
        fma = len(re.findall(r"^\s*fma\.", ptx, flags=re.M))
        row.update(regs=regs, spills=spills, stack=stack, shared=k.metadata.shared, fma=fma)
        problems = [p for p, bad in (("spills", spills), ("stack", stack), ("fma", fma)) if bad]
        if problems:
            row["error"] = "has " + ", ".join(problems)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    row["seconds"] = round(time.time() - t0, 2)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel compile processes")
    p.add_argument("--levels", type=int, default=4, help="feature levels in the signatures (FPN: 4)")
    a = p.parse_args(argv)
    items = [(*v, cc) for v in _variants(a.levels) for cc in TARGETS]
    t0 = time.time()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            rows = list(ex.map(_compile_one, items, chunksize=4))
    else:
        rows = [_compile_one(it) for it in items]
    cols = ("kernel", "dtype", "proj", "config", "target", "regs", "spills", "stack", "shared", "fma")
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols) + "  status")
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols) + "  " + (r["error"] or "ok"))
    bad = [r for r in rows if r["error"]]
    print(f"\n{len(rows)} compiles ({len(rows) - len(bad)} ok, {len(bad)} failed) in {time.time() - t0:.1f} s; "
          f"max registers {max((r['regs'] for r in rows if isinstance(r['regs'], int)), default='-')}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
