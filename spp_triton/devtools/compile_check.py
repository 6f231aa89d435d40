"""Compile every Triton kernel ahead of time for sm_80 and sm_90, without a GPU.

    python -m spp_triton.devtools.compile_check [--jobs J] [--levels L]

Variants: the cells forward (nested max with pyramid 1/2/3/6, direct max with the
non-nested 1/3/5, avg), the bilinear forward (nested 1/2/3/6 and direct 1/3/5, max and
avg), the backwards (cells; bilinear nested and direct; max and avg, atomic and
deterministic), the fixed-point scale pre-pass and the finalize pass; each in both
layouts (NCHW, channels-last) where the kernel has one, each dtype where the kernel
has one (the features' for the forward, the output's for finalize; the backward reads
grad_out as float32, which its launcher makes it), each GPU autotune
config (the full list, not the interpreter's single one) with the "round" projection
(plus the first config with "sppnet"; bilinear kernels take sampling_ratio and aligned
at run time), and each target. For each it runs

    triton.compile(ASTSource(fn=<the JITFunction under the autotuner>, signature=...,
                             constexprs=...), target=GPUTarget("cuda", cc, 32),
                   options={"num_warps": ..., "enable_fp_fusion": False})

(pointers get the 16-byte alignment hint of a usual launch), then reads the register
count, spills and stack of the cubin from ``ptxas -v`` on the generated PTX (the ptxas
that triton itself uses for that target; ``cuobjdump -res-usage`` on the cubin if that
fails: REG and LOCAL), and counts ``fma`` instructions in the PTX (there must be none:
the window projection and the bilinear samples need every rounding). Prints a table, then per kernel the highest
register count and the occupancy it implies (warps resident per SM out of 64, limited by
the 64 K registers, the shared memory and the 32 blocks of an SM); exits non-zero on any
compile failure, spill, local-memory load or store, or fma. (A stack frame alone, with no
local loads or stores in the PTX, is the call frame of ptxas' IEEE division slow path
that the bilinear kernels' ``tl.div_rn`` uses; it is reported, not failed.)

It must compile, not interpret: ``main()`` drops TRITON_INTERPRET from its own process's
environment before the kernels are first imported (importing this module changes nothing,
so tests that read its variants keep their interpreter), and refuses to run in a process
whose kernels were already decorated for the interpreter.

A variant whose inputs (Triton's and ptxas' versions, the sources of the kernels,
geometry.py and this file, the variant's signature, constexprs, compile options and
target) are unchanged since it last compiled cleanly is not compiled again: its row comes
from a cache file under SPP_TRITON_CACHE_DIR (default ~/.cache/spp_triton), one per
fingerprint of those sources, or from ``compile_check_verified.json`` beside this file:
the last clean check of every variant, committed with the sources, so that a fresh clone
reuses it. A changed kernel changes the fingerprint, so it always compiles again (and a
clean check rewrites that file, to be committed with the change). ``--no-cache``
compiles everything. While compiling it prints a progress line with an ETA at least
every 15 s.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

TARGETS = (80, 90)
DTYPES = ("fp32", "fp16", "bf16")
# Shared memory per SM usable by blocks (bytes): sm_80 (A100) 164 KB, sm_90 (H100) 228 KB.
SHARED_PER_SM = {80: 164 * 1024, 90: 228 * 1024}


def _variants(num_levels: int):
    """(kernel, label, dtype, options, signature, constexprs) of every compile (options:
    num_warps, and maxnreg where the config sets it); kernel
    is "module.function" within spp_triton.triton_backend.

    Cells kernels with a projection get every config with "round" (PROJ=1: ``x * s +
    0.5``, where a fused multiply-add would change the result, so the fma count below
    means something) and the first config with "sppnet" (PROJ=0) too. Bilinear kernels
    take sampling_ratio and aligned at run time: one compile covers them all.
    """
    for name, label, dt, ci, opts, sig, const in _configs_matrix(num_levels):
        if name.startswith("align_kernels."):
            yield name, label, dt, opts, sig, const
            continue
        if "PROJ" not in const:
            yield name, label, dt, opts, sig, dict(const, PROJ=1) if name.endswith("spp_bwd_kernel") else const
            continue
        yield name, label, dt, opts, sig, dict(const, PROJ=1)
        if ci == 0:
            yield name, label, dt, opts, sig, dict(const, PROJ=0)


def _forward_signature(L, dt, align):
    sig = {"feats": (f"*{dt}",) * L, "heights": ("i32",) * L, "widths": ("i32",) * L, "rois_ptr": "*fp32",
           "levels_ptr": "*i32", "scales_ptr": "*fp32", "out_ptr": f"*{dt}", "argmax_ptr": "*i32", "N": "i32",
           "C": "i32"}
    return dict(sig, ratio="i32", aligned="i32") if align else sig


def _backward_signature(L, dt, det, align):
    sig = {"grads": ("*fp32",) * L, "accs": (("*i64" if det else "*fp32"),) * L, "exp_ptr": "*i32",
           "grad_out_ptr": f"*{dt}", "argmax_ptr": "*i32", "rois_ptr": "*fp32", "levels_ptr": "*i32",
           "scales_ptr": "*fp32", "heights": ("i32",) * L, "widths": ("i32",) * L, "N": "i32", "C": "i32"}
    return dict(sig, ratio="i32", aligned="i32") if align else sig


def _configs_matrix(num_levels: int):
    from ..triton_backend import align_kernels, cells_kernels, shared_kernels

    L = num_levels
    pyr = shared_kernels.pyramid_constexprs
    # (module, label, pyramid, FINE, MODE): the cells forward folds nested max pyramids
    # from the fine grid; the bilinear one nested pyramids in both modes.
    fwd = (("cells", "fwd_nested_max", (1, 2, 3, 6), 6, 0), ("cells", "fwd_direct_max", (1, 3, 5), 0, 0),
           ("cells", "fwd_avg", (1, 2, 3, 6), 0, 1),
           ("align", "align_fwd_nested_max", (1, 2, 3, 6), 6, 0), ("align", "align_fwd_direct_max", (1, 3, 5), 0, 0),
           ("align", "align_fwd_nested_avg", (1, 2, 3, 6), 6, 1), ("align", "align_fwd_direct_avg", (1, 3, 5), 0, 1))
    modules = {"cells": (cells_kernels, "spp_fwd_kernel", "spp_bwd_kernel"),
               "align": (align_kernels, "spp_align_fwd_kernel", "spp_align_bwd_kernel")}
    for family, label, pyramid, fine, mode in fwd:
        module, fwd_name, _ = modules[family]
        for cl in (False, True):
            for dt in DTYPES:
                for ci, cfg in enumerate(module.forward_configs(interpret=False, channels_last=cl)):
                    const = dict(NUM_LEVELS=L, **pyr(pyramid), FINE=fine, FINE_PAD=8 if fine else 1, MODE=mode,
                                 CHANNELS_LAST=cl, **cfg.kwargs)
                    if family == "cells":
                        const["PROJ"] = 1
                    yield (f"{family}_kernels.{fwd_name}", f"{label}_{'cl' if cl else 'nchw'}", dt, ci, _options(cfg),
                           _forward_signature(L, dt, family == "align"), const)
    # (module, label prefix, pyramid, FINE) of the backward: the cells backward reads no
    # grid nesting; the bilinear one walks one lattice or one per grid.
    bwd = (("cells", "bwd", (1, 2, 3, 6), None), ("align", "align_bwd_nested", (1, 2, 3, 6), 6),
           ("align", "align_bwd_direct", (1, 3, 5), 0))
    for family, prefix, pyramid, fine in bwd:
        module, _, bwd_name = modules[family]
        for mode in (0, 1):
            for det in (False, True):
                for cl in (False, True):
                    for dt in ("fp32",):  # the launcher hands every grad_out over as float32
                        for ci, cfg in enumerate(module.backward_configs(interpret=False, channels_last=cl)):
                            const = dict(NUM_LEVELS=L, **pyr(pyramid), B_PAD=64, MODE=mode, CHANNELS_LAST=cl,
                                         DETERMINISTIC=det, HEADROOM=18, **cfg.kwargs)
                            if fine is not None:
                                const["FINE"] = fine
                            elif mode == 1:  # max mode reads no window: PROJ is dead code there
                                const["PROJ"] = 1
                            label = (f"{prefix}_{'determ' if det else 'atomic'}_{('max', 'avg')[mode]}_"
                                     f"{'cl' if cl else 'nchw'}")
                            yield (f"{family}_kernels.{bwd_name}", label, dt, ci, _options(cfg),
                                   _backward_signature(L, dt, det, family == "align"), const)
    yield ("shared_kernels.abs_max_exponent_kernel", "bwd_scale_prepass", "fp32", 0, {"num_warps": 4},
           {"x_ptr": "*fp32", "n": "i32", "exp_ptr": "*i32"}, dict(BLOCK=4096))
    for dt in DTYPES:
        for det in (False, True):
            sig = {"grads": ("*fp32",) * L, "accs": (("*i64" if det else "*fp32"),) * L, "outs": (f"*{dt}",) * L,
                   "numels": ("i32",) * L, "exp_ptr": "*i32"}
            yield ("shared_kernels.finalize_kernel", f"bwd_finalize{'_determ' if det else ''}", dt, 0, {"num_warps": 4}, sig,
                   dict(NUM_LEVELS=L, DETERMINISTIC=det, HEADROOM=18, BLOCK=1024))


def _options(cfg) -> dict:
    """A triton.Config's compile options (num_warps, and maxnreg if it sets one)."""
    return {"num_warps": cfg.num_warps, **({"maxnreg": cfg.maxnreg} if cfg.maxnreg else {})}


def _jit_fn(name):
    import importlib

    module, attr = name.split(".")
    fn = getattr(importlib.import_module(f"spp_triton.triton_backend.{module}"), attr)
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


def _config_label(const, opts) -> str:
    regs = f"/r{opts['maxnreg']}" if "maxnreg" in opts else ""
    if "BLOCK_C" in const:
        return f"C{const['BLOCK_C']}/{const['TILE_H']}x{const['TILE_W']}/w{opts['num_warps']}{regs}"
    return f"{const['BLOCK']}/w{opts['num_warps']}{regs}"


def _compile_one(item):
    name, label, dt, opts, sig, const, cc = item
    warps = opts["num_warps"]
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _jit_fn(name)
    if "ratio" in sig:
        geometry = "bilinear"  # sampling_ratio and aligned at run time
    else:
        geometry = ("sppnet", "round")[const["PROJ"]] if "PROJ" in const else "-"
    row = dict(kernel=label, dtype=dt, proj=geometry,
               config=_config_label(const, opts), warps=warps, cc=cc,
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
                           options={**opts, "enable_fp_fusion": False})
        ptx = k.asm["ptx"]
        regs, spills, stack = getattr(k, "n_regs", None), getattr(k, "n_spills", None), 0
        if regs is None or spills is None:
            try:
                regs, spills, stack = _ptxas_usage(ptx, cc)
            except Exception:  # noqa: BLE001  (fall back to the cubin's resource table)
                regs, spills, stack = _cuobjdump_usage(k.asm["cubin"])
        fma = len(re.findall(r"^\s*fma\.", ptx, flags=re.M))
        # A stack frame without local loads or stores in the PTX is the call frame of
        # ptxas' IEEE division slow path (div.rn.f32, the bilinear kernels' divisions by a
        # grid size that is not a power of two): no spill, no local-memory traffic.
        local_traffic = re.search(r"\b(ld|st)\.local\b", ptx) is not None
        row.update(regs=regs, spills=spills, stack=stack, shared=k.metadata.shared, fma=fma)
        problems = [p for p, bad in (("spills", spills), ("stack", stack and local_traffic), ("fma", fma)) if bad]
        if problems:
            row["error"] = "has " + ", ".join(problems)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    row["seconds"] = round(time.time() - t0, 2)
    return row


# What a compile's result depends on besides its own variant: Triton's version, the
# kernels' sources and this checker's (the rules, the configs, how rows are made).
_INPUT_SOURCES = ("triton_backend/shared_kernels.py", "triton_backend/cells_kernels.py", "triton_backend/align_kernels.py",
                  "geometry.py", "devtools/compile_check.py")  # relative to spp_triton/


def _ptxas_version() -> str:
    """The version line of the ptxas that Triton compiles with (it ships in the wheel)."""
    from triton.backends.nvidia.compiler import get_ptxas

    out = subprocess.run([get_ptxas(TARGETS[-1]).path, "--version"], capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def _fingerprint() -> str:
    import hashlib

    import triton

    h = hashlib.sha256(triton.__version__.encode() + b"\0" + _ptxas_version().encode())
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in _INPUT_SOURCES:
        with open(os.path.join(package, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


def _cache_path(fingerprint: str) -> str:
    """One JSON file of rows per fingerprint, under SPP_TRITON_CACHE_DIR (default
    ~/.cache/spp_triton); a change to any input starts a new file."""
    root = os.environ.get("SPP_TRITON_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "spp_triton")
    return os.path.join(root, f"compile_check-{fingerprint[:20]}.json")


def _item_key(item) -> str:
    name, label, dt, opts, sig, const, cc = item
    return repr((name, label, dt, sorted(opts.items()), sorted(sig.items()), sorted(const.items()), cc))


def _load_cache(path: str) -> dict:
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# The rows of the last clean check of every variant, committed with the sources, so that a
# fresh clone whose fingerprint (Triton and ptxas versions, kernel sources, geometry.py,
# this file) matches reuses them instead of compiling 322 variants; any change to those
# inputs gives another fingerprint, and everything compiles again.
VERIFIED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compile_check_verified.json")


def _load_verified(fingerprint: str) -> dict:
    import json

    try:
        with open(VERIFIED) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data["rows"] if data.get("fingerprint") == fingerprint else {}


def _save_verified(fingerprint: str, rows: dict) -> None:
    import json

    with open(VERIFIED, "w") as f:
        json.dump({"fingerprint": fingerprint, "rows": rows}, f, indent=0, sort_keys=True)
        f.write("\n")


def _minutes(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _compile_all(todo, jobs: int, every: float = 15.0) -> list:
    """Compile ``todo`` in ``jobs`` processes, printing a progress line with an ETA at
    least every ``every`` seconds while compiles finish (and after the last)."""
    if not todo:
        return []
    t0 = last = time.time()
    done, failed, results = 0, 0, [None] * len(todo)

    def report(force=False):
        nonlocal last
        now = time.time()
        if force or now - last >= every:
            left = (now - t0) / done * (len(todo) - done) if done else 0
            eta = f", about {_minutes(left)} left" if done < len(todo) else ""
            print(f"  compile_check: {done}/{len(todo)} compiled ({failed} failed), {_minutes(now - t0)}{eta}",
                  flush=True)
            last = now

    print(f"  compile_check: {len(todo)} variants to compile in {jobs} process(es)", flush=True)
    if jobs > 1 and len(todo) > 1:
        from concurrent.futures import as_completed

        with ProcessPoolExecutor(jobs) as ex:
            futures = {ex.submit(_compile_one, it): i for i, it in enumerate(todo)}
            for fut in as_completed(futures):
                results[futures[fut]] = row = fut.result()
                done, failed = done + 1, failed + bool(row["error"])
                report()
    else:
        for i, it in enumerate(todo):
            results[i] = row = _compile_one(it)
            done, failed = done + 1, failed + bool(row["error"])
            report()
    report(force=True)
    return results


def _save_cache(path: str, cache: dict) -> None:
    import json

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(cache, f)
    os.replace(tmp, path)  # atomic: a concurrent run sees the old file or the new one


def _leave_the_interpreter() -> None:
    """Drops TRITON_INTERPRET for this process and its compile workers (which inherit the
    environment); the kernels read it when they are decorated, at their first import."""
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return
    kernels = [m for m in sys.modules if m.startswith("spp_triton.triton_backend.")]
    if kernels:
        raise SystemExit(f"compile_check: TRITON_INTERPRET={os.environ['TRITON_INTERPRET']} and {kernels[0]} is "
                         "already imported for the interpreter: run it in a process of its own "
                         "(python -m spp_triton.devtools.compile_check)")
    os.environ.pop("TRITON_INTERPRET")


def main(argv=None) -> int:
    _leave_the_interpreter()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel compile processes")
    p.add_argument("--levels", type=int, default=4, help="feature levels in the signatures (FPN: 4)")
    p.add_argument("--no-cache", action="store_true",
                   help="compile every variant even if its inputs are unchanged since a passing check")
    a = p.parse_args(argv)
    items = [(*v, cc) for v in _variants(a.levels) for cc in TARGETS]
    t0 = time.time()
    fingerprint = _fingerprint()
    path = _cache_path(fingerprint)
    cache = {} if a.no_cache else {**_load_verified(fingerprint), **_load_cache(path)}
    todo = [it for it in items if _item_key(it) not in cache]
    fresh = _compile_all(todo, a.jobs)
    # Only passing compiles are kept: a failure is compiled again next time.
    cache.update({_item_key(it): row for it, row in zip(todo, fresh) if not row["error"]})
    if fresh:
        _save_cache(path, cache)
    done = dict(zip(map(_item_key, todo), fresh))
    rows = [done.get(_item_key(it)) or cache[_item_key(it)] for it in items]
    cols = ("kernel", "dtype", "proj", "config", "target", "regs", "spills", "stack", "shared", "fma")
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols) + "  status")
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols) + "  " + (r["error"] or "ok"))
    bad = [r for r in rows if r["error"]]
    reused = len(items) - len(todo)
    # What a check found, without how long it took (which differs from run to run).
    verified = {_item_key(it): {k: v for k, v in cache[_item_key(it)].items() if k != "seconds"} for it in items}
    if not bad and _load_verified(fingerprint) != verified:
        _save_verified(fingerprint, verified)
        print(f"\nwrote {os.path.relpath(VERIFIED)}: commit it with the kernel change, so that fresh clones "
              "reuse this check")
    print(f"\n{len(rows)} compiles ({len(rows) - len(bad)} ok, {len(bad)} failed; {reused} unchanged since a passing "
          f"check, from {path} or {os.path.basename(VERIFIED)}) in {time.time() - t0:.1f} s; "
          f"max registers {max((r['regs'] for r in rows if isinstance(r['regs'], int)), default='-')}")
    print("\nPer kernel: the highest register count and the occupancy of that compile "
          "(resident warps per SM / 64)")
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        ok = [r for r in rows if r["kernel"] == kernel and isinstance(r["regs"], int)]
        if ok:
            worst = max(ok, key=lambda r: (r["regs"], -occupancy(r)))
            print(f"  {kernel:26s} {worst['regs']:4d} registers ({worst['config']}, {worst['target']}, "
                  f"{worst['dtype']}): occupancy {occupancy(worst):.0%}; lowest occupancy of any config "
                  f"{min(occupancy(r) for r in ok):.0%}")
    return 1 if bad else 0


def occupancy(row) -> float:
    """Resident warps per SM / 64 for one compile: blocks per SM limited by registers
    (allocated per warp in units of 256), shared memory and the 32-block cap."""
    warps, regs, shared = row["warps"], row["regs"], row["shared"] or 0
    regs_per_warp = -(-regs * 32 // 256) * 256
    blocks = min(65536 // (regs_per_warp * warps), 64 // warps, 32,
                 SHARED_PER_SM[row["cc"]] // shared if shared else 32)
    return blocks * warps / 64


if __name__ == "__main__":
    sys.exit(main())
