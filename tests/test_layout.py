"""The packages' layout: no import circle, the documented import paths and registered names.

The import graph is read from the source (every ``import`` statement, also those inside
functions, which is where the one circle this project had lived), not from
``sys.modules``, so a circle hidden behind a lazy import still fails.
"""
import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spp_triton", "mmdet_plugin", "imagery", "sppnet_runtime")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known) -> set[str]:
    """The project modules that ``name`` imports (a ``from P import x`` names P.x when
    that is a module, else P)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[:len(here) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_import_graph_reader_sees_relative_and_lazy_imports():
    known = _modules()
    fallback = ROOT / "spp_triton" / "torch_backend" / "fallback.py"
    assert _imports("spp_triton.torch_backend.fallback", fallback, known) >= {
        "spp_triton.geometry", "spp_triton.registry", "spp_triton.torch_backend.fallback_cells",
        "spp_triton.torch_backend.fallback_align"}
    load_counter = ROOT / "spp_triton" / "devtools" / "load_counter.py"  # imports backends inside functions
    assert "spp_triton.triton_backend" in _imports("spp_triton.devtools.load_counter", load_counter, known)
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_circle_in_any_package():
    known = _modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    assert _cycle(graph) is None


@pytest.mark.parametrize("package", ["imagery", "sppnet_runtime"])
def test_the_torch_free_packages_import_no_torch_mmdet_or_opencv(package):
    """What the ONNX runtime deploys: every import of every module, lazy ones too."""
    heavy = {"torch", "mmdet", "mmcv", "mmengine", "cv2", "spp_triton", "mmdet_plugin", "triton"}
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found.update({n.split(".")[0]: path.name for n in names if n.split(".")[0] in heavy})
    assert not found, found


@pytest.mark.parametrize("folder, holds", [
    ("imagery", {"read.py", "windows.py", "merge.py", "outputs.py", "cli.py"}),
    ("spp_triton/triton_backend", {"launch.py", "cells_kernels.py", "align_kernels.py", "shared_kernels.py"}),
    ("spp_triton/torch_backend", {"dispatch.py", "cpp_kernel.py", "fallback.py", "fallback_cells.py",
                                  "fallback_align.py"}),
    ("spp_triton/torch_backend/csrc", {"spp_cpu.h", "spp_cpu_cells.cpp", "spp_cpu_align.cpp", "spp_cpu_ops.cpp"}),
    ("spp_triton/export", {"onnx_export.py"}),
    ("spp_triton/devtools", {"compile_check.py", "load_counter.py", "selftest.py", "workloads.py"}),
    ("mmdet_plugin/models/backbones", {"efficientnet_lite.py"}),
    ("mmdet_plugin/models/detectors", {"multiscale_sppnet.py"}),
    ("mmdet_plugin/models/roi_heads/roi_extractors", {"spp_roi_extractor.py"}),
    ("mmdet_plugin/models/roi_heads/bbox_heads", {"spp_bbox_head.py"}),
    ("mmdet_plugin/datasets", {"checked_voc.py", "synthetic_voc.py", "tile_voc.py", "trees.py"}),
    ("mmdet_plugin/engine", {"runner.py", "checkpoint_safety.py", "flops.py"}),
    ("mmdet_plugin/engine/hooks", {"channels_last_hook.py"}),
    ("mmdet_plugin/visualization", {"gt_beside_predictions.py"}),
])
def test_each_concern_has_its_folder(folder, holds):
    assert holds <= {p.name for p in (ROOT / folder).iterdir()}


def test_no_path_is_skipped_by_torch_compile():
    # torch.compile skips every file whose path contains "triton/backends".
    assert not [p for p in (ROOT / "spp_triton").rglob("*") if "triton/backends" in p.as_posix()]


def test_the_backend_table_names_importable_packages_with_the_contract():
    from spp_triton.registry import BACKENDS

    for entry in BACKENDS.values():
        if entry.name == "triton":
            pytest.importorskip("triton", reason="the Triton backend needs triton")
        impl = entry.impl()
        assert callable(impl.forward) and callable(impl.backward), entry.module


def test_import_paths_the_docs_showed_before_the_move_still_work():
    import spp_triton

    pytest.importorskip("onnxscript", reason="the export module needs the [export] extra")
    from spp_triton import onnx_export  # docs/deploy.md, before 2026-12-02

    assert onnx_export is importlib.import_module("spp_triton.export.onnx_export")
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        spp_triton.not_a_module  # noqa: B018


def test_the_plugin_registers_the_same_names_from_its_top_level():
    pytest.importorskip("mmdet", reason="needs mmdet")
    import mmdet_plugin
    from mmdet.registry import DATASETS, HOOKS, MODELS, RUNNERS

    for registry, names in ((MODELS, ("SPPRoIExtractor", "SPPBBoxHead", "MultiScaleSPPNet")),
                            (RUNNERS, ("DataCheckedRunner",)), (HOOKS, ("ChannelsLastHook",)),
                            (DATASETS, ("CheckedVOCDataset",))):
        for name in names:
            assert registry.get(name) is getattr(mmdet_plugin, name), name
    # Modules the docs and tests reach through the package's top level.
    assert mmdet_plugin.checkpoint_safety.install and mmdet_plugin.flops.OP_NAME


# --------------------------------------------------------------------------- configs and docs
def test_configs_are_in_folders_each_with_a_readme_that_lists_them():
    """mmdet's layout: configs/ holds _base_/, one folder per concern and only the configs
    the README names at the top; each folder's README links every config in it."""
    configs = ROOT / "configs"
    assert {p.name for p in configs.glob("*.py")} == {"sppnet_r50_voc.py"}
    folders = [p for p in configs.iterdir() if p.is_dir() and p.name != "_base_"]
    assert len(folders) >= 5
    for folder in folders:
        readme = (folder / "README.md").read_text()
        unlisted = [p.name for p in folder.glob("*.py") if f"]({p.name})" not in readme]
        assert not unlisted, f"{folder.name}/README.md does not link {unlisted}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    import re

    heads = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_in_the_markdown_resolves():
    """A moved file or section leaves no dead link: every relative link in the project's
    Markdown names a file that exists and, with a #fragment, a heading in it."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: the Markdown files cannot be listed")
    dead = []
    for name in tracked:
        page = ROOT / name
        text = page.read_text()
        for url in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z]+:", url):
                continue
            path, _, fragment = url.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                dead.append(f"{name}: {url}")
            elif fragment and target.suffix == ".md" and fragment not in _anchors(target.read_text()):
                dead.append(f"{name}: {url} (no such heading)")
    assert not dead, "\n".join(dead)
