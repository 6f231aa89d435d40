"""Load MMEngine checkpoints under torch >= 2.6 without running code from them.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: a restricted
unpickler that builds tensors and plain containers and refuses every other global.
Checkpoints written by MMEngine's ``Runner`` also hold the message hub's
``HistoryBuffer`` objects and numpy arrays, so ``Runner.load_checkpoint`` and
``Runner.resume`` (``mim test --checkpoint``, ``mim train --resume``) fail with
"Unsupported global". The usual fix, ``weights_only=False``, would let any checkpoint
file run arbitrary code while it is being loaded.

This module keeps the weights-only unpickler and widens its allow-list, only while
MMEngine loads a checkpoint, by exactly what a Runner checkpoint needs: the
``HistoryBuffer`` class, numpy arrays/scalars of numeric or bool dtype, and
``getattr`` restricted to ``getattr(HistoryBuffer, <public method>)``. A
``HistoryBuffer`` pickles its ``_statistics_methods`` dict as
``__builtin__.getattr(HistoryBuffer, 'mean')`` and so on; an unrestricted ``getattr``
would reach ``func.__globals__`` and from there anything.

``install()`` re-registers MMEngine's checkpoint loaders (local files, http(s),
open-mmlab://, torchvision://, mmcls://, s3/petrel, pavi) so they load this way.
It also drops ``meta['config']`` from loaded checkpoints: ``Runner.resume`` would
execute that text as a Python config file, and MMEngine itself never writes that key
(it writes ``meta['cfg']``). ``load_checkpoint_safely()`` is the same load without
MMEngine's loader machinery.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import os.path as osp
import pickle
import re
import threading
import types
from functools import lru_cache

import torch

__all__ = ["UnsafeCheckpointError", "install", "load_checkpoint_safely"]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asked for something outside the allow-list; nothing of it ran."""

    def __init__(self, source, refused: str, detail: str = ""):
        self.source = str(source)
        self.refused = refused
        message = (
            f"Refused to load checkpoint {self.source!r}: it needs {refused}, which is "
            "outside the allow-list (torch's weights-only defaults plus the MMEngine "
            "additions in mmdet_plugin.engine.checkpoint_safety). It was refused before being "
            "looked up or called: no code from the file ran. Checkpoints written by "
            "MMEngine's Runner and plain torch state dicts never need it; treat this file "
            "as untrusted.")
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class _Refused(pickle.UnpicklingError):
    """Raised by the substitutes below; torch wraps it, ``_refusal`` unwraps it."""

    def __init__(self, target: str, rule: str):
        self.target, self.rule = target, rule
        super().__init__(f"{target} ({rule})")


def _describe(obj) -> str:
    # Describe by type only: repr() of an unpickled object could be anything.
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    if type(obj) is types.FunctionType:
        return f"<function {obj.__module__}.{obj.__qualname__}>"
    return f"<{type(obj).__module__}.{type(obj).__qualname__} object>"


def _history_buffer_getattr(obj, name, *default):
    """``getattr`` as HistoryBuffer's pickled state uses it, and nothing more."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if not default and obj is HistoryBuffer and type(name) is str \
            and not name.startswith("_"):
        # The class's own __dict__: no inheritance, no descriptors, no properties.
        attr = vars(HistoryBuffer).get(name)
        if type(attr) is types.FunctionType:
            return attr
    shown = repr(name)[:80] if type(name) is str else _describe(name)
    raise _Refused(f"getattr({_describe(obj)}, {shown}{', <default>' if default else ''})",
                   "getattr is allowed only as getattr(HistoryBuffer, <public method>)")


def _numeric_dtype(spec, align=False, copy=False):
    """``numpy.dtype`` as numpy pickles it (``dtype('f8', False, True)``), numeric only.

    A hand-written pickle can skip the dtype's BUILD, which is where torch would check
    its class; without this, ``dtype('O')`` would let an array hold arbitrary objects.
    """
    import numpy as np

    if type(spec) is str:
        result = np.dtype(spec, align, copy)
        if type(result) in _numeric_dtype_classes():
            return result
    shown = repr(spec)[:80] if type(spec) is str else _describe(spec)
    raise _Refused(f"numpy.dtype({shown})", "only numeric and bool numpy dtypes are allowed")


@lru_cache(maxsize=1)
def _numeric_dtype_classes() -> frozenset:
    import numpy as np

    # What torch checks when it BUILDs a dtype: type(instance), the per-dtype class
    # (numpy.dtypes.Float64DType, ...), never numpy.dtype itself.
    return frozenset(type(np.dtype(c)) for c in
                     np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?")


@lru_cache(maxsize=1)
def _allow_list() -> tuple:
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    entries = [
        HistoryBuffer,
        (_history_buffer_getattr, "builtins.getattr"),  # __builtin__ is mapped by torch
        (_numeric_dtype, "numpy.dtype"),
        np.ndarray,
    ]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2 / 1
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
        entries.append((multiarray.scalar, f"{module}.scalar"))
    entries += sorted(_numeric_dtype_classes(), key=str)
    return tuple(entries)


# torch's safe_globals context removes its entries on exit even if they were added
# before (by the user) or are still needed (by a load in another thread), so enter
# it once for the outermost load and only for entries not already allowed.
_lock = threading.Lock()
_depth = 0
_context = None


@contextlib.contextmanager
def _allowed_during_load():
    global _depth, _context
    with _lock:
        if _depth == 0:
            already = set(torch.serialization.get_safe_globals())
            _context = torch.serialization.safe_globals(
                [g for g in _allow_list() if g not in already])
            _context.__enter__()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _context.__exit__(None, None, None)
                _context = None


_UNSUPPORTED = re.compile(r"GLOBAL (\S+) was not an allowed global")
_BLOCKED = re.compile(r"unsupported GLOBAL (\S+) whose module")


def _refusal(source, err: pickle.UnpicklingError) -> UnsafeCheckpointError:
    # torch re-raises the unpickler's error with advice to pass weights_only=False
    # (`raise ... from None`); the original is still its __context__.
    inner = err.__context__ if isinstance(err.__context__, pickle.UnpicklingError) else err
    text = str(inner)
    if isinstance(inner, _Refused):
        return UnsafeCheckpointError(source, inner.target, inner.rule)
    match = _UNSUPPORTED.search(text) or _BLOCKED.search(text)
    if match:
        return UnsafeCheckpointError(source, f"the global {match.group(1)}")
    last_line = text.strip().splitlines()[-1] if text.strip() else ""
    return UnsafeCheckpointError(
        source, "something the weights-only unpickler may not build or call", last_line)


@contextlib.contextmanager
def _refusals_explained(source):
    with _allowed_during_load():
        try:
            yield
        except pickle.UnpicklingError as err:
            if isinstance(err, UnsafeCheckpointError):
                raise
            raise _refusal(source, err) from None


def load_checkpoint_safely(path, map_location="cpu"):
    """``torch.load`` an MMEngine or plain torch checkpoint without running its code.

    Raises:
        UnsafeCheckpointError: the file needs a global outside the allow-list.
    """
    with _refusals_explained(path):
        return torch.load(path, map_location=map_location, weights_only=True)


def _for_runner(checkpoint):
    # Runner.resume passes meta['config'] to Config.fromstring, which executes it.
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and "config" in meta:
        from mmengine.logging import print_log
        del meta["config"]
        print_log("Dropped meta['config'] from the checkpoint: Runner.resume would "
                  "execute it as Python. (MMEngine stores its config in meta['cfg'].)",
                  logger="current", level=logging.WARNING)
    return checkpoint


# The loaders below mirror mmengine 0.10.7's mmengine/runner/checkpoint.py, with
# weights_only=True passed explicitly (load_from_http's torch.hub call defaults to
# weights_only=False). Their names keep the `load_from_` prefix: CheckpointLoader
# logs `__name__[10:]` as the backend name.

def load_from_local(filename, map_location):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return _for_runner(load_checkpoint_safely(filename, map_location))


def load_from_http(filename, map_location=None, model_dir=None, progress=None):
    from mmengine.dist import get_dist_info
    from torch.hub import load_state_dict_from_url

    if progress is None:
        progress = os.isatty(0)

    def load():
        with _refusals_explained(filename):
            return load_state_dict_from_url(filename, model_dir=model_dir,
                                            map_location=map_location,
                                            progress=progress, weights_only=True)

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = load()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load()
    return _for_runner(checkpoint)


def load_from_pavi(filename, map_location=None):
    from tempfile import TemporaryDirectory

    assert filename.startswith("pavi://"), \
        f"Expected filename startswith `pavi://`, but get {filename}"
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError("Please install pavi to load checkpoint from modelcloud.")
    model = modelcloud.get(filename[7:])
    with TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        with _refusals_explained(filename):
            checkpoint = torch.load(downloaded_file, map_location=map_location,
                                    weights_only=True)
    return _for_runner(checkpoint)


def load_from_ceph(filename, map_location=None, backend="petrel"):
    from mmengine.fileio import get_file_backend

    file_backend = get_file_backend(filename, backend_args={"backend": backend})
    with io.BytesIO(file_backend.get(filename)) as buffer, _refusals_explained(filename):
        checkpoint = torch.load(buffer, map_location=map_location, weights_only=True)
    return _for_runner(checkpoint)


def load_from_openmmlab(filename, map_location=None):
    from mmengine.logging import print_log
    from mmengine.runner import checkpoint as mmengine_checkpoint

    model_urls = mmengine_checkpoint.get_external_models()
    prefix_str = "open-mmlab://"
    if filename.startswith(prefix_str):
        model_name = filename[13:]
    else:
        model_name = filename[12:]
        prefix_str = "openmmlab://"
    deprecated_urls = mmengine_checkpoint.get_deprecated_model_names()
    if model_name in deprecated_urls:
        print_log(f"{prefix_str}{model_name} is deprecated in favor of "
                  f"{prefix_str}{deprecated_urls[model_name]}",
                  logger="current", level=logging.WARNING)
        model_name = deprecated_urls[model_name]
    model_url = model_urls[model_name]
    if model_url.startswith(("http://", "https://")):
        return load_from_http(model_url, map_location=map_location)
    filename = osp.join(mmengine_checkpoint._get_mmengine_home(), model_url)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return _for_runner(load_checkpoint_safely(filename, map_location))


def install() -> None:
    """Route MMEngine's checkpoint loading through the safe loaders. Idempotent."""
    from mmengine.runner import checkpoint as mmengine_checkpoint

    register = mmengine_checkpoint.CheckpointLoader.register_scheme
    register("", load_from_local, force=True)
    register(("http://", "https://"), load_from_http, force=True)
    register("pavi://", load_from_pavi, force=True)
    register([r"(\S+\:)?s3://", r"(\S+\:)?petrel://"], load_from_ceph, force=True)
    register(("open-mmlab://", "openmmlab://"), load_from_openmmlab, force=True)
    # The torchvision:// and mmcls:// loaders call this module-level name at call
    # time; pointing it at the safe loader covers them without copying them.
    mmengine_checkpoint.load_from_http = load_from_http
