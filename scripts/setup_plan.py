"""Decides, before the long mmcv build starts, how ``make setup`` builds mmcv 2.1.0 here.

    .venv/bin/python scripts/setup_plan.py [--shell]

Run by ``scripts/setup_venv.sh`` right after torch is installed (it imports torch, never
mmcv or mmdet). mmcv 2.1.0's setup.py compiles its CUDA ops whenever
``torch.cuda.is_available()`` or ``FORCE_CUDA=1``, and
``torch.utils.cpp_extension`` then needs a CUDA toolkit: without one it stops with
``OSError: CUDA_HOME environment variable is not set``, and with an ``nvcc`` of another
major version than ``torch.version.cuda`` with a RuntimeError, possibly after minutes of
compiling. This module checks the same things first and says which of these it is:

- ``cpu``: mmcv's CPU ops only (a CPU build of torch, or a CUDA build with no GPU
  visible and FORCE_CUDA unset); nothing to set.
- ``cuda``: mmcv's CUDA ops, with a toolkit whose major version matches torch's CUDA;
  sets ``CUDA_HOME`` to the toolkit checked and ``TORCH_CUDA_ARCH_LIST`` to the visible
  GPUs' architectures (the one torch itself would pick, made explicit and printed),
  unless the user set it.
- ``hip``: a ROCm build of torch; mmcv builds its HIP ops, nothing here is checked.
- ``stop``: the build would fail; the message names what is missing or mismatched
  (torch's CUDA version and nvcc's) and the ways out. Also for any torch whose headers
  require C++20 (torch >= 2.14): mmcv 2.1.0's setup.py compiles with ``-std=c++17`` and
  its first file stops with "#error C++20 or later compatible compiler is required to use
  ATen", CPU or CUDA alike.

``decide`` is the decision, a pure function of a ``Machine``; ``read_machine`` fills one
from this machine (torch, the environment, ``nvcc --version``) and is the only part that
reads anything. With ``--shell`` the decision goes to stderr and stdout carries the
``export`` lines for the shell to eval; the exit status is 2 on a stop.

    .venv/bin/python scripts/setup_plan.py --check-mmcv

whether the installed mmcv fits this machine: ``mmcv.ops`` loads with this torch and,
where mmcv's build would compile CUDA ops (``expected_ops``), it has them. Exit 1 if
not: before the build it tells whether one is needed, after it whether pip installed a
wheel it had cached from an earlier build (for another torch, or without a GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# PyTorch's own wheel index, one folder per CUDA build (cu126, cu128, cu130, ...).
TORCH_INDEX = "https://download.pytorch.org/whl"
# A header every CUDA toolkit has; its absence means CUDA_HOME is not a toolkit root.
TOOLKIT_HEADER = "cuda_runtime_api.h"
# The CUDA library headers torch's own CUDA headers include (ATen/cuda/CUDAContextLight.h),
# so every CUDA source of mmcv: a minimal toolkit (nvcc and the runtime only) lacks them.
LIBRARY_HEADERS = ("cusparse.h", "cublas_v2.h", "cublasLt.h", "cusolverDn.h")
# The C++ standard mmcv 2.1.0's setup.py compiles with (``-std=c++17`` for torch > 1.12.1).
MMCV_CXX = 17


@dataclasses.dataclass(frozen=True)
class Toolkit:
    """The CUDA toolkit ``torch.utils.cpp_extension`` would compile with.

    Attributes:
        home: CUDA_HOME as torch finds it (CUDA_HOME, else CUDA_PATH, else the folder
            above the ``nvcc`` on PATH, else /usr/local/cuda if it exists); None if none.
        found_by: how ``home`` was found ("CUDA_HOME", "CUDA_PATH", "nvcc on PATH",
            "/usr/local/cuda"); "" when there is none.
        nvcc: ``home/bin/nvcc`` if it exists, else None.
        version: "major.minor" read from ``nvcc --version`` ("release 13.0,"), or None.
        missing: of TOOLKIT_HEADER and LIBRARY_HEADERS, those found neither in
            ``home/include`` nor in a folder of CPATH or CPLUS_INCLUDE_PATH.
    """

    home: str | None = None
    found_by: str = ""
    nvcc: str | None = None
    version: str | None = None
    missing: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Machine:
    """Everything the decision reads.

    Attributes:
        torch_version: ``torch.__version__``.
        torch_cuda: ``torch.version.cuda`` ("13.0"), None for a CPU build.
        torch_hip: ``torch.version.hip``, None unless a ROCm build.
        gpus: compute capabilities of the visible GPUs, e.g. ((9, 0),); empty when
            ``torch.cuda.is_available()`` is False.
        torch_arches: ``torch.cuda.get_arch_list()`` ("sm_90", ...): the newest
            architecture torch was built for caps the GPUs' ones, as torch does.
        toolkit: the CUDA toolkit torch would use.
        torch_cxx: the C++ standard torch's headers require (17, 20), read from
            ``torch/include/ATen/ATen.h``; None if unknown.
        wheel_include: include folders of the NVIDIA pip wheels installed beside torch
            (``nvidia/*/include``) that hold LIBRARY_HEADERS.
        arch_list: TORCH_CUDA_ARCH_LIST as the user set it (None or "" when unset).
        force_cuda: FORCE_CUDA as set (mmcv builds CUDA ops when it is exactly "1").
    """

    torch_version: str
    torch_cuda: str | None = None
    torch_hip: str | None = None
    gpus: tuple[tuple[int, int], ...] = ()
    torch_arches: tuple[str, ...] = ()
    toolkit: Toolkit = Toolkit()
    torch_cxx: int | None = None
    wheel_include: tuple[str, ...] = ()
    arch_list: str | None = None
    force_cuda: str | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """The decision.

    Attributes:
        ops: "cpu", "cuda", "hip" (what mmcv's build will compile) or "stop".
        env: environment variables to export before the build.
        text: what to print: the decision and why, or on a stop what is wrong and the
            ways out.
    """

    ops: str
    env: dict[str, str]
    text: str

    @property
    def stop(self) -> bool:
        return self.ops == "stop"

    def shell(self) -> str:
        """``export`` lines for ``eval`` in bash; also SPP_MMCV_OPS (not exported)."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]
        return "\n".join(lines + [f"SPP_MMCV_OPS={self.ops}"]) + "\n"


def parse_nvcc_version(text: str) -> str | None:
    """"major.minor" from ``nvcc --version`` output (its "release 13.0," part), as
    ``torch.utils.cpp_extension`` reads it; None if there is none."""
    m = re.search(r"release (\d+[.]\d+)", text)
    return m.group(1) if m else None


def _major(version: str) -> int:
    return int(version.split(".")[0])


def gpu_arch_list(gpus, torch_arches) -> str:
    """TORCH_CUDA_ARCH_LIST for these GPUs, as torch.utils.cpp_extension builds it when
    the variable is unset: each GPU's capability, capped at the newest ``sm_`` torch was
    built for, sorted, unique, "+PTX" on the last. E.g. ((8, 0), (9, 0)) -> "8.0;9.0+PTX"."""
    built = [int("".join(re.findall(r"\d+", a.split("_")[1]))) for a in torch_arches if a.startswith("sm_")]
    cap = max(((sm // 10, sm % 10) for sm in built), default=None)
    archs = sorted({min(cap, tuple(g)) if cap else tuple(g) for g in gpus})
    names = [f"{major}.{minor}" for major, minor in archs]
    names[-1] += "+PTX"
    return ";".join(names)


def _ways_out(m: Machine, have: str | None) -> str:
    """The two ways out of a toolkit that is missing (have None) or of another major."""
    need = _major(m.torch_cuda)
    lines = ["Two ways out:",
             f"  1. install a CUDA {need}.x toolkit (nvcc {need}.x) and point CUDA_HOME at its root:",
             f"       CUDA_HOME=/usr/local/cuda-{m.torch_cuda} make setup"]
    if have:
        tag = "cu" + have.replace(".", "")
        lines += [f"  2. or choose a torch build for CUDA {_major(have)}.x, the toolkit you have (only the major "
                  "must match):",
                  f"       make clean-venv; make setup TORCH_SPEC=\"torch==<version>\" "
                  f"PIP_EXTRA_INDEX_URL={TORCH_INDEX}/{tag}",
                  f"     (PyTorch's CUDA wheels: {TORCH_INDEX}/cu<major><minor> as PIP_INDEX_URL, or as "
                  "PIP_EXTRA_INDEX_URL to keep PyPI too; any cu" + str(_major(have)) + "x folder that has "
                  "your torch version)"]
    else:
        lines += ["  2. or choose a torch build that matches a toolkit you can install, with TORCH_SPEC and "
                  "PyTorch's index for that CUDA version:",
                  f"       make clean-venv; make setup TORCH_SPEC=\"torch==<version>\" "
                  f"PIP_EXTRA_INDEX_URL={TORCH_INDEX}/cu<major><minor>",
                  "     (PIP_INDEX_URL instead of PIP_EXTRA_INDEX_URL to take only PyTorch's index)"]
    return "\n".join(lines)


def expected_ops(m: Machine) -> str:
    """What mmcv 2.1.0's setup.py compiles on ``m``: "hip" for ROCm torch, "cuda" for a
    CUDA torch with a GPU visible or FORCE_CUDA=1 (its rule), else "cpu"."""
    if m.torch_hip:
        return "hip"
    return "cuda" if m.torch_cuda is not None and (m.gpus or m.force_cuda == "1") else "cpu"


def mmcv_problem(expected: str, compiled: str | None, error: str = "") -> str | None:
    """Why an installed mmcv does not fit, or None if it does.

    Args:
        expected: ``expected_ops`` of the machine.
        compiled: ``mmcv.ops.get_compiling_cuda_version()`` ("13.0", or "not available"
            for CPU-only ops); None when ``mmcv.ops`` does not load.
        error: the load error, when it does not.
    """
    if compiled is None:
        return f"mmcv.ops does not load with this torch: {error}"
    if expected == "cuda" and compiled == "not available":
        return ("mmcv's ops were compiled without CUDA, but this machine's build would compile them with CUDA "
                "(a wheel pip built before, with no GPU visible?)")
    return None


def decide(m: Machine) -> Plan:
    """What mmcv 2.1.0's build will compile on machine ``m``, the environment it needs,
    or why it would fail. Pure: reads nothing but ``m``."""
    torch_is = f"torch {m.torch_version}"
    force = m.force_cuda == "1"
    odd_force = m.force_cuda not in (None, "", "0", "1")
    notes = [f"(FORCE_CUDA={m.force_cuda!r} counts as unset: mmcv reads only FORCE_CUDA=1)"] if odd_force else []

    if m.torch_cxx and m.torch_cxx > MMCV_CXX:
        return Plan("stop", {}, (
            f"{torch_is}'s headers require C++{m.torch_cxx} (torch/include/ATen/ATen.h), but mmcv 2.1.0's "
            f"setup.py compiles its ops with -std=c++{MMCV_CXX}: its first file would stop with \"#error C++20 "
            "or later compatible compiler is required to use ATen.\" (CPU and CUDA builds alike; mmdet 3.3 "
            "refuses mmcv >= 2.2).\nChoose a torch whose headers accept C++17 (2.13 and older) with TORCH_SPEC:\n"
            "  make clean-venv; make setup TORCH_SPEC=\"torch==2.13.0\"\n"
            f"  (for a CUDA build add PIP_EXTRA_INDEX_URL={TORCH_INDEX}/cu<major><minor> matching your toolkit)"))
    if m.torch_hip:
        return Plan("hip", {}, "\n".join([f"{torch_is} is a ROCm build (HIP {m.torch_hip}): mmcv builds its HIP "
                                          "ops; this check covers CUDA toolkits only."] + notes))
    if expected_ops(m) == "cpu":
        if m.torch_cuda is not None:
            return Plan("cpu", {}, "\n".join([
                f"{torch_is} is a CUDA {m.torch_cuda} build, but no GPU is visible (torch.cuda.is_available() is "
                "False: no GPU, CUDA_VISIBLE_DEVICES empty, or a driver older than CUDA "
                f"{m.torch_cuda} needs) and FORCE_CUDA is not 1: mmcv 2.1.0 gets its CPU ops only.",
                "To compile its CUDA ops anyway (e.g. on a build machine), set FORCE_CUDA=1 and "
                "TORCH_CUDA_ARCH_LIST (e.g. \"9.0\")."] + notes))
        if force:
            return Plan("stop", {}, (
                f"FORCE_CUDA=1 asks mmcv 2.1.0 for CUDA ops, but {torch_is} is a CPU build "
                "(torch.version.cuda is None): CUDA ops cannot be built against it.\n"
                "Either unset FORCE_CUDA (mmcv then builds its CPU ops), or install a CUDA build of torch:\n"
                f"  make clean-venv; make setup TORCH_SPEC=\"torch==<version>\" "
                f"PIP_EXTRA_INDEX_URL={TORCH_INDEX}/cu<major><minor>\n"
                "with a CUDA toolkit of the same major version (CUDA_HOME)."))
        return Plan("cpu", {}, "\n".join([f"{torch_is} is a CPU build: mmcv 2.1.0 gets its CPU ops only "
                                          "(RoIAlign and nms run on CPU tensors; no CUDA ops)."] + notes))
    why = f"{len(m.gpus)} GPU(s) visible" if m.gpus else "FORCE_CUDA=1"
    want = (f"mmcv 2.1.0 compiles its CUDA ops ({why}), and they need a CUDA toolkit of torch's major version:\n"
            f"  {torch_is}: CUDA {m.torch_cuda} (torch.version.cuda)\n")
    tk = m.toolkit
    if tk.home is None:
        return Plan("stop", {}, want + "  nvcc: none found (CUDA_HOME and CUDA_PATH unset, no nvcc on PATH, no "
                    "/usr/local/cuda); the build would stop with \"OSError: CUDA_HOME environment variable is not "
                    "set\".\n" + _ways_out(m, None))
    where = f"{tk.home} (from {tk.found_by})"
    if tk.nvcc is None:
        return Plan("stop", {}, want + f"  nvcc: not found in {where}/bin.\n" + _ways_out(m, None))
    if tk.version is None:
        return Plan("stop", {}, want + f"  nvcc: {tk.nvcc} printed no \"release X.Y\" for --version.\n"
                    + _ways_out(m, None))
    have = f"  nvcc: CUDA {tk.version} ({tk.nvcc}, CUDA_HOME {where})\n"
    if _major(tk.version) != _major(m.torch_cuda):
        return Plan("stop", {}, want + have + f"The majors differ ({_major(tk.version)} vs {_major(m.torch_cuda)}): "
                    "torch.utils.cpp_extension would stop the build with a RuntimeError (\"The detected CUDA "
                    "version ... mismatches the version that was used to compile PyTorch\").\n"
                    + _ways_out(m, tk.version))
    if TOOLKIT_HEADER in tk.missing:
        return Plan("stop", {}, want + have + (
            f"But {tk.home} is not a toolkit root: it has no include/{TOOLKIT_HEADER} (an nvcc wrapper on PATH?), "
            "so the CUDA sources would not compile.\nSet CUDA_HOME to the toolkit's root (the folder holding "
            "bin/nvcc and include/), e.g.:\n  CUDA_HOME=/usr/local/cuda make setup"))
    if tk.missing:
        minor = m.torch_cuda.replace(".", "-")
        lines = [f"But {tk.home}/include lacks {', '.join(tk.missing)}: torch's CUDA headers include them "
                 "(ATen/cuda/CUDAContextLight.h), so every CUDA source of mmcv would stop with \"fatal error: "
                 f"{tk.missing[0]}: No such file or directory\" (a toolkit with nvcc and the runtime only).",
                 f"Install the CUDA libraries' headers of that toolkit (e.g. the cuda-libraries-dev-{minor} "
                 f"package, part of cuda-toolkit-{minor})"]
        if m.wheel_include:
            lines[-1] += (", or compile against those of NVIDIA's pip wheels that came with torch (the "
                          "versions torch was built with):\n  CPLUS_INCLUDE_PATH=" + os.pathsep.join(m.wheel_include)
                          + " make setup")
        else:
            lines[-1] += "."
        return Plan("stop", {}, want + have + "\n".join(lines))
    env = {"CUDA_HOME": tk.home}
    if m.arch_list:
        arch = f"TORCH_CUDA_ARCH_LIST={m.arch_list} (as you set it)"
    elif m.gpus:
        env["TORCH_CUDA_ARCH_LIST"] = gpu_arch_list(m.gpus, m.torch_arches)
        caps = ", ".join(f"{a}.{b}" for a, b in m.gpus)
        arch = f"TORCH_CUDA_ARCH_LIST={env['TORCH_CUDA_ARCH_LIST']} (the visible GPUs' compute capabilities: {caps})"
    else:
        return Plan("stop", {}, want + have + (
            "FORCE_CUDA=1 with no GPU visible and TORCH_CUDA_ARCH_LIST unset: torch has no GPU to take the "
            "architectures from (torch.utils.cpp_extension would stop with an IndexError). Say which GPUs the "
            "build is for, e.g.:\n"
            "  FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=\"9.0\" make setup   (H100/H200; 8.0 = A100, 8.9 = L4/L40, "
            "10.0 = B200)"))
    if tk.version != m.torch_cuda:
        notes.append(f"(minor versions differ, {tk.version} vs {m.torch_cuda}: torch only warns about that)")
    return Plan("cuda", env, "\n".join([
        f"mmcv 2.1.0 will be built with its CUDA ops ({why}): {torch_is} is CUDA {m.torch_cuda}, nvcc is CUDA "
        f"{tk.version} ({tk.nvcc}).",
        f"  CUDA_HOME={tk.home}", f"  {arch}"] + notes))


def find_toolkit(environ: Mapping[str, str], default_home: str = "/usr/local/cuda",
                 run: Callable[[str], str] | None = None) -> Toolkit:
    """The toolkit ``torch.utils.cpp_extension._find_cuda_home`` picks under ``environ``
    (its PATH included), with the version its ``bin/nvcc --version`` prints.
    ``run(nvcc)`` returns that output (default: runs it)."""
    home, found_by = None, ""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            home, found_by = environ[var], var
            break
    if home is None:
        nvcc = shutil.which("nvcc", path=environ.get("PATH", ""))
        if nvcc:
            home, found_by = os.path.dirname(os.path.dirname(nvcc)), "nvcc on PATH"
        elif os.path.exists(default_home):
            home, found_by = default_home, default_home
    if home is None:
        return Toolkit()
    nvcc = os.path.join(home, "bin", "nvcc")
    folders = [os.path.join(home, "include")] + [d for var in ("CPATH", "CPLUS_INCLUDE_PATH")
                                                 for d in environ.get(var, "").split(os.pathsep) if d]
    missing = tuple(h for h in (TOOLKIT_HEADER,) + LIBRARY_HEADERS
                    if not any(os.path.exists(os.path.join(d, h)) for d in folders))
    if not os.path.exists(nvcc):
        return Toolkit(home, found_by, None, None, missing)
    run = run or (lambda exe: subprocess.run([exe, "--version"], capture_output=True, text=True,
                                             timeout=60).stdout)
    try:
        version = parse_nvcc_version(run(nvcc))
    except (OSError, subprocess.SubprocessError):
        version = None
    return Toolkit(home, found_by, nvcc, version, missing)


def wheel_include(site_packages: Path) -> tuple[str, ...]:
    """The ``nvidia/*/include`` folders under ``site_packages`` that hold any of
    LIBRARY_HEADERS (one, ``nvidia/cu13/include``, for CUDA 13's wheels; one per library
    for CUDA 12's)."""
    found = {str(h.parent) for name in LIBRARY_HEADERS for h in site_packages.glob(f"nvidia/*/include/{name}")}
    return tuple(sorted(found))


_CPLUSPLUS = {"201402": 14, "201703": 17, "202002": 20, "202302": 23}


def torch_header_cxx(aten_h: str) -> int | None:
    """The C++ standard ``ATen.h``'s text requires, from its ``__cplusplus < 202002L``
    guard (20; ``201703L``: 17); None without such a guard."""
    m = re.search(r"__cplusplus\s*<\s*(\d{6})L", aten_h)
    return _CPLUSPLUS.get(m.group(1)) if m else None


def read_mmcv() -> tuple[str | None, str]:
    """(``mmcv.ops.get_compiling_cuda_version()``, a one-line description) of the
    installed mmcv; (None, the error) when it does not load."""
    try:
        import mmcv
        from mmcv.ops import get_compiling_cuda_version

        compiled = get_compiling_cuda_version()
        return compiled, f"mmcv {mmcv.__version__}, ops compiled with CUDA: {compiled}"
    except Exception as e:  # a probe: ImportError, OSError (undefined symbol), anything mmcv raises
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def read_machine(environ: Mapping[str, str] = os.environ) -> Machine:
    """This machine's torch, GPUs, toolkit and build variables."""
    import torch

    visible = torch.cuda.is_available()
    aten = Path(torch.__file__).parent / "include" / "ATen" / "ATen.h"
    return Machine(
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        torch_hip=getattr(torch.version, "hip", None),
        gpus=tuple(tuple(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count()))
        if visible else (),
        torch_arches=tuple(torch.cuda.get_arch_list()) if visible else (),
        toolkit=find_toolkit(environ),
        torch_cxx=torch_header_cxx(aten.read_text()) if aten.exists() else None,
        wheel_include=wheel_include(Path(torch.__file__).parent.parent),
        arch_list=environ.get("TORCH_CUDA_ARCH_LIST"),
        force_cuda=environ.get("FORCE_CUDA"),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shell", action="store_true",
                   help="decision on stderr, export lines on stdout (for eval); exit 2 on a stop")
    p.add_argument("--check-mmcv", action="store_true",
                   help="whether the installed mmcv fits this machine; exit 1 if not")
    a = p.parse_args(argv)
    if a.check_mmcv:
        compiled, line = read_mmcv()
        problem = mmcv_problem(expected_ops(read_machine()), compiled, line)
        print(problem or line, flush=True)
        return 1 if problem else 0
    plan = decide(read_machine())
    text = ("STOP before building mmcv:\n" if plan.stop else "") + plan.text
    print(text, file=sys.stderr if a.shell else sys.stdout, flush=True)
    if a.shell and not plan.stop:
        sys.stdout.write(plan.shell())
    return 2 if plan.stop else 0


if __name__ == "__main__":
    sys.exit(main())
