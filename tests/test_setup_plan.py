"""scripts/setup_plan.py: the decision `make setup` takes before building mmcv, every
branch, from faked machines; the toolkit lookup from fake toolkits on disk; the script on
this machine."""
import dataclasses
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup_plan.py"
_spec = importlib.util.spec_from_file_location("setup_plan", SCRIPT)
sp = importlib.util.module_from_spec(_spec)
sys.modules["setup_plan"] = sp  # dataclasses look their module up by name
_spec.loader.exec_module(sp)

TORCH_130 = dict(torch_version="2.14.1+cu130", torch_cuda="13.0",
                 torch_arches=("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"))
TK_130 = sp.Toolkit("/usr/local/cuda-13.0", "CUDA_HOME", "/usr/local/cuda-13.0/bin/nvcc", "13.0")
TK_124 = sp.Toolkit("/usr/local/cuda-12.4", "nvcc on PATH", "/usr/local/cuda-12.4/bin/nvcc", "12.4")
ALL_HEADERS = (sp.TOOLKIT_HEADER,) + sp.LIBRARY_HEADERS
H200 = ((9, 0),)


def machine(**kw):
    return sp.Machine(**{**TORCH_130, "gpus": H200, "toolkit": TK_130, **kw})


def test_matching_toolkit_builds_cuda_ops_for_the_visible_gpus():
    plan = sp.decide(machine())
    assert plan.ops == "cuda" and not plan.stop
    assert plan.env == {"CUDA_HOME": "/usr/local/cuda-13.0", "TORCH_CUDA_ARCH_LIST": "9.0+PTX"}
    assert "CUDA ops" in plan.text and "13.0" in plan.text
    assert plan.shell() == ("export CUDA_HOME=/usr/local/cuda-13.0\nexport TORCH_CUDA_ARCH_LIST=9.0+PTX\n"
                            "SPP_MMCV_OPS=cuda\n")


def test_shell_lines_eval_in_bash():
    plan = sp.decide(machine(gpus=((9, 0), (8, 0)), toolkit=dataclasses.replace(TK_130, home="/opt/cuda 13")))
    assert plan.env["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0+PTX"
    out = subprocess.run(["bash", "-c", 'eval "$1"; echo "$CUDA_HOME|$TORCH_CUDA_ARCH_LIST|$SPP_MMCV_OPS"', "-",
                          plan.shell()], capture_output=True, text=True, check=True).stdout
    assert out == "/opt/cuda 13|8.0;9.0+PTX|cuda\n"


def test_arch_list_of_mixed_gpus_is_sorted_unique_and_capped_at_torchs_newest():
    assert sp.gpu_arch_list(((9, 0), (8, 0), (9, 0)), TORCH_130["torch_arches"]) == "8.0;9.0+PTX"
    # A GPU newer than torch's build is compiled for the newest sm torch has (as torch does).
    assert sp.gpu_arch_list(((13, 0),), ("sm_80", "sm_90")) == "9.0+PTX"
    assert sp.gpu_arch_list(((12, 1),), ()) == "12.1+PTX"


def test_user_set_arch_list_is_kept():
    plan = sp.decide(machine(arch_list="8.0;9.0"))
    assert plan.ops == "cuda"
    assert "TORCH_CUDA_ARCH_LIST" not in plan.env and plan.env["CUDA_HOME"] == TK_130.home
    assert "8.0;9.0 (as you set it)" in plan.text


def test_minor_version_difference_builds_with_a_note():
    tk = sp.Toolkit("/opt/cuda", "CUDA_PATH", "/opt/cuda/bin/nvcc", "13.1")
    plan = sp.decide(machine(toolkit=tk))
    assert plan.ops == "cuda" and "minor versions differ" in plan.text


@pytest.mark.parametrize("toolkit, says", [
    (sp.Toolkit(), "nvcc: none found"),
    (sp.Toolkit("/opt/cuda", "CUDA_HOME", None, None, ALL_HEADERS), "not found in /opt/cuda (from CUDA_HOME)/bin"),
    (sp.Toolkit("/opt/cuda", "CUDA_HOME", "/opt/cuda/bin/nvcc", None), "printed no \"release X.Y\""),
])
def test_no_nvcc_stops_naming_torchs_cuda_and_both_ways_out(toolkit, says):
    plan = sp.decide(machine(toolkit=toolkit))
    assert plan.stop and plan.env == {}
    assert says in plan.text
    assert "torch 2.14.1+cu130: CUDA 13.0" in plan.text
    assert "install a CUDA 13.x toolkit" in plan.text and "CUDA_HOME" in plan.text
    assert "TORCH_SPEC" in plan.text and "PIP_INDEX_URL" in plan.text and "PIP_EXTRA_INDEX_URL" in plan.text
    assert plan.shell().endswith("SPP_MMCV_OPS=stop\n") and "export" not in plan.shell()


def test_nvcc_of_another_major_stops_naming_both_versions_and_both_ways_out():
    plan = sp.decide(machine(toolkit=TK_124))
    assert plan.stop
    assert "CUDA 13.0 (torch.version.cuda)" in plan.text
    assert "nvcc: CUDA 12.4 (/usr/local/cuda-12.4/bin/nvcc" in plan.text
    assert "The majors differ (12 vs 13)" in plan.text
    assert "install a CUDA 13.x toolkit" in plan.text
    assert "a torch build for CUDA 12.x" in plan.text
    assert "TORCH_SPEC" in plan.text and "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124" in plan.text
    assert "PIP_INDEX_URL" in plan.text


def test_nvcc_wrapper_outside_a_toolkit_root_stops_asking_for_cuda_home():
    # /usr/local/bin/nvcc as a wrapper script: torch would take /usr/local as CUDA_HOME.
    tk = sp.Toolkit("/usr/local", "nvcc on PATH", "/usr/local/bin/nvcc", "13.0", ALL_HEADERS)
    plan = sp.decide(machine(toolkit=tk))
    assert plan.stop
    assert "/usr/local is not a toolkit root" in plan.text and "CUDA_HOME=" in plan.text


def test_toolkit_without_the_cuda_library_headers_stops_naming_them_and_the_wheels_headers():
    # This machine's /usr/local/cuda-13.0: nvcc and the runtime, no cuSPARSE/cuBLAS/cuSOLVER headers.
    tk = dataclasses.replace(TK_130, missing=sp.LIBRARY_HEADERS)
    plan = sp.decide(machine(toolkit=tk))
    assert plan.stop
    assert "lacks cusparse.h, cublas_v2.h, cublasLt.h, cusolverDn.h" in plan.text
    assert "fatal error: cusparse.h: No such file or directory" in plan.text
    assert "cuda-libraries-dev-13-0" in plan.text and "CPLUS_INCLUDE_PATH" not in plan.text
    wheels = "/venv/site-packages/nvidia/cu13/include"
    plan = sp.decide(machine(toolkit=tk, wheel_include=(wheels,)))
    assert plan.stop and f"CPLUS_INCLUDE_PATH={wheels} make setup" in plan.text


def test_cuda_torch_without_a_visible_gpu_builds_cpu_ops():
    plan = sp.decide(machine(gpus=(), toolkit=sp.Toolkit()))
    assert plan.ops == "cpu" and plan.env == {}
    assert "no GPU is visible" in plan.text and "FORCE_CUDA=1" in plan.text


def test_force_cuda_without_a_gpu_builds_cuda_ops_for_the_users_arch_list():
    plan = sp.decide(machine(gpus=(), force_cuda="1", arch_list="9.0"))
    assert plan.ops == "cuda" and plan.env == {"CUDA_HOME": TK_130.home}
    assert "(FORCE_CUDA=1)" in plan.text and "9.0 (as you set it)" in plan.text


def test_force_cuda_without_a_gpu_or_an_arch_list_stops():
    plan = sp.decide(machine(gpus=(), force_cuda="1"))
    assert plan.stop and "TORCH_CUDA_ARCH_LIST" in plan.text and "no GPU visible" in plan.text


def test_force_cuda_without_a_gpu_still_needs_a_matching_toolkit():
    plan = sp.decide(machine(gpus=(), force_cuda="1", arch_list="9.0", toolkit=TK_124))
    assert plan.stop and "The majors differ" in plan.text


def test_cpu_torch_builds_cpu_ops_whatever_the_toolkit():
    for tk in (sp.Toolkit(), TK_124, TK_130):
        plan = sp.decide(sp.Machine(torch_version="2.13.0+cpu", toolkit=tk))
        assert plan.ops == "cpu" and plan.env == {}
        assert "CPU build" in plan.text


def test_force_cuda_with_cpu_torch_stops():
    plan = sp.decide(sp.Machine(torch_version="2.13.0+cpu", force_cuda="1", toolkit=TK_130))
    assert plan.stop
    assert "torch 2.13.0+cpu is a CPU build" in plan.text and "TORCH_SPEC" in plan.text


def test_force_cuda_other_than_1_is_unset_as_mmcv_reads_it():
    plan = sp.decide(machine(gpus=(), force_cuda="true"))
    assert plan.ops == "cpu" and "FORCE_CUDA='true' counts as unset" in plan.text


@pytest.mark.parametrize("ops_machine", [machine(), machine(gpus=()), sp.Machine(torch_version="2.14.1+cpu")])
def test_torch_whose_headers_need_cxx20_stops_any_build(ops_machine):
    plan = sp.decide(dataclasses.replace(ops_machine, torch_cxx=20))
    assert plan.stop and "require C++20" in plan.text and "-std=c++17" in plan.text
    assert 'TORCH_SPEC="torch==2.13.0"' in plan.text
    assert sp.decide(dataclasses.replace(ops_machine, torch_cxx=17)).ops in ("cuda", "cpu")


def test_torch_header_cxx_reads_atens_guard():
    assert sp.torch_header_cxx("#if !defined(_MSC_VER) && __cplusplus < 202002L\n#error C++20 or later") == 20
    assert sp.torch_header_cxx("#if !defined(_MSC_VER) && __cplusplus < 201703L\n#error C++17") == 17
    assert sp.torch_header_cxx("#pragma once") is None


def test_this_torchs_headers_are_read():
    import torch

    aten = Path(torch.__file__).parent / "include" / "ATen" / "ATen.h"
    assert sp.read_machine().torch_cxx == sp.torch_header_cxx(aten.read_text()) in (17, 20)


def test_rocm_torch_is_passed_through():
    plan = sp.decide(sp.Machine(torch_version="2.9.0+rocm6.4", torch_hip="6.4", gpus=((9, 4),)))
    assert plan.ops == "hip" and plan.env == {}


def test_expected_ops_is_mmcvs_rule():
    assert sp.expected_ops(machine()) == "cuda"
    assert sp.expected_ops(machine(gpus=())) == "cpu"
    assert sp.expected_ops(machine(gpus=(), force_cuda="1")) == "cuda"
    assert sp.expected_ops(sp.Machine(torch_version="2.13.0+cpu", force_cuda="1")) == "cpu"
    assert sp.expected_ops(sp.Machine(torch_version="2.9.0+rocm6.4", torch_hip="6.4")) == "hip"


def test_mmcv_problem():
    assert sp.mmcv_problem("cpu", "not available") is None
    assert sp.mmcv_problem("cuda", "13.0") is None
    assert sp.mmcv_problem("cpu", "13.0") is None
    assert "compiled without CUDA" in sp.mmcv_problem("cuda", "not available")
    assert "does not load with this torch: ImportError: undefined symbol" in \
        sp.mmcv_problem("cpu", None, "ImportError: undefined symbol")


def test_this_venvs_mmcv_is_read():
    pytest.importorskip("mmcv.ops", reason="mmcv not installed")
    import torch
    from mmcv.ops import get_compiling_cuda_version

    compiled, line = sp.read_mmcv()
    assert compiled == get_compiling_cuda_version() and line.startswith("mmcv 2.")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check-mmcv"], capture_output=True, text=True)
    problem = sp.mmcv_problem(sp.expected_ops(sp.read_machine()), compiled, line)
    assert proc.returncode == (1 if problem else 0) and proc.stdout.strip() == (problem or line)


# ---- the toolkit lookup, on fake toolkits in tmp_path ----

def _headers(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("")


def _fake_toolkit(root: Path, release: str | None, headers=ALL_HEADERS) -> Path:
    (root / "bin").mkdir(parents=True)
    nvcc = root / "bin" / "nvcc"
    out = f"Cuda compilation tools, release {release}, V{release}.1" if release else "nvcc: no version"
    nvcc.write_text(f"#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\necho '{out}'\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    _headers(root / "include", headers)
    return root


def test_find_toolkit_takes_cuda_home_first_then_cuda_path_then_path(tmp_path):
    a = _fake_toolkit(tmp_path / "a", "12.4")
    b = _fake_toolkit(tmp_path / "b", "13.0")
    c = _fake_toolkit(tmp_path / "c", "11.8", headers=())
    none = str(tmp_path / "none")
    path = f"{c / 'bin'}"
    assert sp.find_toolkit({"CUDA_HOME": str(a), "CUDA_PATH": str(b), "PATH": path}, none) == \
        sp.Toolkit(str(a), "CUDA_HOME", str(a / "bin" / "nvcc"), "12.4")
    assert sp.find_toolkit({"CUDA_HOME": "", "CUDA_PATH": str(b), "PATH": path}, none).version == "13.0"
    found = sp.find_toolkit({"PATH": path}, none)
    assert (found.home, found.found_by, found.version, found.missing) == (str(c), "nvcc on PATH", "11.8", ALL_HEADERS)
    assert sp.find_toolkit({"PATH": str(tmp_path)}, str(b)) == \
        sp.Toolkit(str(b), str(b), str(b / "bin" / "nvcc"), "13.0")
    assert sp.find_toolkit({"PATH": str(tmp_path)}, none) == sp.Toolkit()


def test_find_toolkit_without_nvcc_or_its_version(tmp_path):
    (tmp_path / "empty").mkdir()
    assert sp.find_toolkit({"CUDA_HOME": str(tmp_path / "empty")}, "/nonexistent") == \
        sp.Toolkit(str(tmp_path / "empty"), "CUDA_HOME", None, None, ALL_HEADERS)
    d = _fake_toolkit(tmp_path / "d", None)
    assert sp.find_toolkit({"CUDA_HOME": str(d)}).version is None


def test_library_headers_count_from_cpath_and_cplus_include_path(tmp_path):
    tk = _fake_toolkit(tmp_path / "tk", "13.0", headers=(sp.TOOLKIT_HEADER,))
    assert sp.find_toolkit({"CUDA_HOME": str(tk)}).missing == sp.LIBRARY_HEADERS
    _headers(tmp_path / "wheels", sp.LIBRARY_HEADERS[:2])
    _headers(tmp_path / "more", sp.LIBRARY_HEADERS[2:])
    env = {"CUDA_HOME": str(tk), "CPLUS_INCLUDE_PATH": f"/nonexistent{os.pathsep}{tmp_path / 'wheels'}",
           "CPATH": str(tmp_path / "more")}
    assert sp.find_toolkit(env).missing == ()


def test_wheel_include_finds_cuda_13_and_cuda_12_layouts(tmp_path):
    _headers(tmp_path / "a" / "nvidia" / "cu13" / "include", sp.LIBRARY_HEADERS)
    assert sp.wheel_include(tmp_path / "a") == (str(tmp_path / "a" / "nvidia" / "cu13" / "include"),)
    for lib, names in (("cusparse", ["cusparse.h"]), ("cublas", ["cublas_v2.h", "cublasLt.h"]),
                       ("cusolver", ["cusolverDn.h"]), ("cudnn", ["cudnn.h"])):
        _headers(tmp_path / "b" / "nvidia" / lib / "include", names)
    assert sp.wheel_include(tmp_path / "b") == tuple(str(tmp_path / "b" / "nvidia" / lib / "include")
                                                     for lib in ("cublas", "cusolver", "cusparse"))
    assert sp.wheel_include(tmp_path / "none") == ()


def test_parse_nvcc_version():
    assert sp.parse_nvcc_version("Cuda compilation tools, release 13.0, V13.0.88") == "13.0"
    assert sp.parse_nvcc_version("Cuda compilation tools, release 12.4, V12.4.131") == "12.4"
    assert sp.parse_nvcc_version("command not found") is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH")
def test_this_machines_nvcc_is_read():
    tk = sp.find_toolkit(os.environ)
    out = subprocess.run([shutil.which("nvcc"), "--version"], capture_output=True, text=True).stdout
    assert tk.version is not None and tk.version == sp.parse_nvcc_version(out)


# ---- the script on this machine ----

def _run(env):
    return subprocess.run([sys.executable, str(SCRIPT), "--shell"], capture_output=True, text=True,
                          env={k: v for k, v in env.items() if v is not None})


def test_script_on_this_machine_agrees_with_decide():
    import torch

    proc = _run(os.environ)
    plan = sp.decide(sp.read_machine())
    assert proc.returncode == (2 if plan.stop else 0), proc.stderr
    assert plan.text in proc.stderr
    assert proc.stdout == ("" if plan.stop else plan.shell())
    if torch.version.cuda is None and os.environ.get("FORCE_CUDA") != "1":
        assert plan.ops == "cpu"


@pytest.mark.skipif(__import__("torch").version.cuda is not None, reason="needs a CPU build of torch")
def test_script_stops_with_exit_2_on_force_cuda_with_cpu_torch():
    proc = _run({**os.environ, "FORCE_CUDA": "1"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("STOP before building mmcv:") and "is a CPU build" in proc.stderr
