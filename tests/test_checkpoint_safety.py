"""MMEngine checkpoints load under torch's weights-only unpickler, and hostile ones don't.

One subprocess that never imports ``mmdet_plugin`` trains a toy ``Runner`` for one
epoch and records what it saved, then shows what stock MMEngine + torch do with that
checkpoint (refuse it) and with a config-bearing one on resume (execute it). The tests
then load the same files here, after ``import mmdet_plugin``.
"""
import json
import os
import pickle
import pickletools
import re
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from torch import nn

HERE = os.path.abspath(__file__)


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode="tensor"):
        out = self.fc(inputs).squeeze(-1)
        if mode == "loss":
            return dict(loss=((out - labels) ** 2).mean())
        return out


def zeroed_toy():
    model = Toy()
    for p in model.parameters():
        nn.init.zeros_(p)
    return model


def runner_kwargs(work_dir, name, train=False, **extra):
    kwargs = dict(model=zeroed_toy(), work_dir=str(work_dir), experiment_name=name,
                  default_scope=None, log_level="WARNING",
                  default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)))
    if train:
        data = [dict(inputs=torch.tensor([i / 4, 1.0]), labels=torch.tensor(i / 2))
                for i in range(8)]
        kwargs.update(
            train_dataloader=dict(dataset=data, batch_size=2,
                                  sampler=dict(type="DefaultSampler", shuffle=False),
                                  collate_fn=dict(type="default_collate")),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)))
    kwargs.update(extra)
    return kwargs


def save_config_payload(path, marker):
    """A checkpoint of plain, weights-only-safe types whose meta['config'] runs a command.

    ``Runner.resume`` hands meta['config'] to ``Config.fromstring``, which executes it.
    """
    code = f"gpu_ids = [__import__('os').system('touch {marker}')]\n"
    torch.save({"meta": {"epoch": 1, "iter": 3, "config": code},
                "state_dict": zeroed_toy().state_dict(),
                "message_hub": {"log_scalars": {}, "runtime_info": {}, "resumed_keys": {}}},
               path)


# Runs in a fresh interpreter: argv[1] is this file, argv[2] the work dir.
SUBPROCESS = r"""
import importlib.util, json, os, pickle, sys
spec = importlib.util.spec_from_file_location("ckpt_safety_toys", sys.argv[1])
toys = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toys)
from mmengine.runner import Runner
work = sys.argv[2]

runner = Runner(**toys.runner_kwargs(work, "train_" + os.path.basename(work), train=True))
runner.train()
optim_state = runner.optim_wrapper.optimizer.state_dict()["state"]
saved = dict(
    state_dict={k: v.tolist() for k, v in runner.model.state_dict().items()},
    momentum={str(k): v["momentum_buffer"].tolist() for k, v in optim_state.items()},
    epoch=runner.epoch, iter=runner.iter,
    scalars={k: [b.data[0].tolist(), b.data[1].tolist()]
             for k, b in runner.message_hub.log_scalars.items()})
ckpt = os.path.join(work, "epoch_1.pth")

try:
    Runner(**toys.runner_kwargs(work, "load_" + os.path.basename(work),
                                load_from=ckpt)).load_or_resume()
    unpatched_load = "LOADED"
except pickle.UnpicklingError as err:
    unpatched_load = str(err)

marker = os.path.join(work, "config_payload_ran")
payload = os.path.join(work, "config_payload.pth")
toys.save_config_payload(payload, marker)
Runner(**toys.runner_kwargs(work, "resume_" + os.path.basename(work), train=True,
                            load_from=payload, resume=True)).load_or_resume()

assert "mmdet_plugin" not in sys.modules, "the unpatched run must not import mmdet_plugin"
json.dump(dict(ckpt=ckpt, saved=saved, unpatched_load=unpatched_load,
               unpatched_config_ran=os.path.exists(marker)),
          open(os.path.join(work, "result.json"), "w"))
"""


@pytest.fixture(scope="module")
def unpatched_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("runner")
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS, HERE, str(work)], cwd=str(work),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(work / "result.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def safety():
    import mmdet_plugin

    return mmdet_plugin.engine.checkpoint_safety


def assert_weights(model, expected):
    for name, value in model.state_dict().items():
        assert torch.allclose(value, torch.tensor(expected[name])), name


# 1. Runner-written checkpoints load: `mim test --checkpoint` and `mim train --resume`.

def test_runner_checkpoint_loads_for_testing(unpatched_run, safety, tmp_path):
    from mmengine.runner import Runner

    runner = Runner(**runner_kwargs(tmp_path, "test_load_" + tmp_path.name,
                                    load_from=unpatched_run["ckpt"], resume=False))
    assert not torch.allclose(runner.model.fc.weight,
                              torch.tensor(unpatched_run["saved"]["state_dict"]["fc.weight"]))
    runner.load_or_resume()
    assert_weights(runner.model, unpatched_run["saved"]["state_dict"])


def test_runner_checkpoint_resumes(unpatched_run, safety, tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import Runner

    saved = unpatched_run["saved"]
    runner = Runner(**runner_kwargs(tmp_path, "test_resume_" + tmp_path.name, train=True,
                                    load_from=unpatched_run["ckpt"], resume=True))
    assert (runner.epoch, runner.iter) == (0, 0)
    runner.load_or_resume()

    assert (runner.epoch, runner.iter) == (saved["epoch"], saved["iter"]) == (1, 4)
    assert_weights(runner.model, saved["state_dict"])
    momentum = runner.optim_wrapper.optimizer.state_dict()["state"]
    assert {str(k) for k in momentum} == set(saved["momentum"])
    for k, v in momentum.items():
        assert torch.allclose(v["momentum_buffer"], torch.tensor(saved["momentum"][str(k)]))
    scalars = runner.message_hub.log_scalars
    assert set(scalars) == set(saved["scalars"]) and "train/loss" in scalars
    for key, (logs, counts) in saved["scalars"].items():
        buffer = scalars[key]
        assert type(buffer) is HistoryBuffer
        assert buffer.data[0].tolist() == pytest.approx(logs)
        assert buffer.data[1].tolist() == counts
    loss, (losses, counts) = scalars["train/loss"], saved["scalars"]["train/loss"]
    # The unpickled statistics methods are HistoryBuffer's own functions and work.
    assert loss._statistics_methods["mean"] is HistoryBuffer.mean
    assert loss.statistics("mean") == pytest.approx(sum(losses) / sum(counts))
    assert loss.statistics("max") == pytest.approx(max(losses))


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2,
                    reason="rewrites a numpy 2 pickle into numpy 1.x module names")
def test_numpy_1_module_spelling_loads(unpatched_run, safety, tmp_path):
    """numpy 1.x writes numpy.core.multiarray where numpy 2 writes numpy._core.multiarray."""
    path = tmp_path / "numpy1.pth"
    with zipfile.ZipFile(unpatched_run["ckpt"]) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info.filename, data)
    assert "numpy.core.multiarray._reconstruct" in \
        torch.serialization.get_unsafe_globals_in_checkpoint(path)
    loss = safety.load_checkpoint_safely(path)["message_hub"]["log_scalars"]["train/loss"]
    saved_losses = unpatched_run["saved"]["scalars"]["train/loss"][0]
    assert loss.data[0].tolist() == pytest.approx(saved_losses)


# 2. Without mmdet_plugin, stock MMEngine + torch fail on (and, on resume, execute) them.

def test_unpatched_runner_refuses_its_own_checkpoint(unpatched_run):
    outcome = unpatched_run["unpatched_load"]
    assert outcome != "LOADED", (
        "stock MMEngine + torch now load a Runner checkpoint: torch's weights-only "
        "default may have changed; re-check whether checkpoint_safety is still needed")
    refused = re.search(r"Unsupported global: GLOBAL (\S+) was not an allowed global", outcome)
    assert refused, outcome
    assert refused.group(1) in {"mmengine.logging.history_buffer.HistoryBuffer", "getattr",
                                "numpy.ndarray", "numpy.dtype",
                                "numpy._core.multiarray._reconstruct",
                                "numpy._core.multiarray.scalar"}, outcome


def test_unpatched_resume_executes_checkpoint_config(unpatched_run):
    assert unpatched_run["unpatched_config_ran"], (
        "stock Runner.resume no longer executes meta['config']; the drop in "
        "checkpoint_safety._for_runner may be unnecessary")


def test_resume_does_not_execute_checkpoint_config(safety, tmp_path):
    from mmengine.runner import Runner

    marker, payload = tmp_path / "ran", tmp_path / "payload.pth"
    save_config_payload(payload, marker)
    runner = Runner(**runner_kwargs(tmp_path, "test_cfg_" + tmp_path.name, train=True,
                                    load_from=str(payload), resume=True))
    runner.load_or_resume()
    assert (runner.epoch, runner.iter) == (1, 3)  # the resume itself went through
    assert not marker.exists()


# 3. Hostile checkpoints are refused and nothing in them runs.

class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class GetattrCall:
    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


def pickle_ops(path):
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        return [(op.name, arg) for op, arg, _ in pickletools.genops(zf.read(name))]


def assert_refusal(err, path, refused):
    message = str(err.value)
    assert isinstance(err.value, pickle.UnpicklingError)
    assert str(path) in message and refused in message and "no code from the file ran" in message
    assert "weights_only" not in message


def refusing_loads(safety, path, tmp_path):
    """Each way the plugin loads a file: plain, Runner load_from, Runner resume."""
    from mmengine.runner import Runner

    yield lambda: safety.load_checkpoint_safely(path)
    for resume in (False, True):
        name = f"hostile_{resume}_{tmp_path.name}"
        yield lambda name=name, resume=resume: Runner(**runner_kwargs(
            tmp_path, name, train=resume, load_from=str(path), resume=resume)).load_or_resume()


def test_code_running_checkpoint_is_refused(safety, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pth"
    torch.save({"state_dict": {}, "meta": RunsCommand(f"touch {marker}")}, path)
    assert ("GLOBAL", f"{os.system.__module__} system") in pickle_ops(path)

    for load in refusing_loads(safety, path, tmp_path):
        with pytest.raises(safety.UnsafeCheckpointError) as err:
            load()
        assert_refusal(err, path, f"{os.system.__module__}.system")
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["function_globals", "dunder_method"])
def test_getattr_beyond_history_buffer_methods_is_refused(safety, tmp_path, attack):
    from mmengine.logging import HistoryBuffer

    cls = "mmengine.logging.history_buffer.HistoryBuffer"
    if attack == "function_globals":  # first step of func.__globals__ -> ... -> os.system
        target, name = HistoryBuffer.min, "__globals__"
        refused = f"getattr(<function {cls}.min>, '__globals__')"
    else:
        target, name = HistoryBuffer, "__init__"
        refused = f"getattr({cls}, '__init__')"
    path = tmp_path / "hostile.pth"
    torch.save({"state_dict": {}, "attack": GetattrCall(target, name)}, path)

    # The file really calls the getattr spelling that HistoryBuffer's own state uses.
    ops = pickle_ops(path)
    getattr_at = ops.index(("GLOBAL", "__builtin__ getattr"))
    name_at = ops.index(("BINUNICODE", name))
    assert getattr_at < name_at and ("REDUCE", None) in ops[name_at:]
    assert "builtins.getattr" in torch.serialization.get_unsafe_globals_in_checkpoint(path)

    for load in refusing_loads(safety, path, tmp_path):
        with pytest.raises(safety.UnsafeCheckpointError) as err:
            load()
        assert_refusal(err, path, refused)


def test_history_buffer_getattr_is_allowed(safety, tmp_path):
    """Control for the test above: the same spelling, on a legitimate target, loads."""
    from mmengine.logging import HistoryBuffer

    path = tmp_path / "legit.pth"
    torch.save({"method": GetattrCall(HistoryBuffer, "mean")}, path)
    assert ("GLOBAL", "__builtin__ getattr") in pickle_ops(path)
    assert safety.load_checkpoint_safely(path)["method"] is HistoryBuffer.mean


class DtypeWithoutBuild:
    def __reduce__(self):
        return (np.dtype, ("O", False, True))  # no state, so no BUILD for torch to check


class ArrayOf:
    def __init__(self, items):
        self.items = items

    def __reduce__(self):
        """What numpy's own ndarray.__reduce__ returns, but with an unBUILT dtype."""
        state = (1, (len(self.items),), DtypeWithoutBuild(), False, self.items)
        return (np.ndarray.__reduce__(np.zeros(0))[0], (np.ndarray, (0,), b"b"), state)


def test_object_arrays_are_refused(safety, tmp_path):
    """An object array could carry anything the unpickler builds into numpy code paths."""
    path = tmp_path / "object_array.pth"
    torch.save({"a": ArrayOf([1, "x"])}, path)
    ops = pickle_ops(path)
    assert ("GLOBAL", "numpy dtype") in ops and ("BINUNICODE", "O") in ops
    with pytest.raises(safety.UnsafeCheckpointError) as err:
        safety.load_checkpoint_safely(path)
    assert_refusal(err, path, "numpy.dtype('O')")


def test_remote_schemes_load_weights_only(safety, tmp_path, monkeypatch, unpatched_run):
    """http(s):// and mmcls:// (which reaches the http loader by its module-level name)."""
    import shutil

    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader, get_mmcls_models

    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    cache = hub / "checkpoints"
    cache.mkdir(parents=True)
    # Already "downloaded": torch.hub loads the cached file without any network access.
    shutil.copy(unpatched_run["ckpt"], cache / "toy_epoch_1.pth")
    runner = Runner(**runner_kwargs(tmp_path, "http_" + tmp_path.name,
                                    load_from="https://example.invalid/ckpt/toy_epoch_1.pth"))
    runner.load_or_resume()
    assert_weights(runner.model, unpatched_run["saved"]["state_dict"])

    # Stock mmengine's http loader would unpickle this with weights_only=False.
    marker = tmp_path / "ran"
    url = get_mmcls_models()["mobilenet_v2"]
    torch.save({"state_dict": RunsCommand(f"touch {marker}")}, cache / url.rsplit("/", 1)[1])
    with pytest.raises(safety.UnsafeCheckpointError) as err:
        CheckpointLoader.load_checkpoint("mmcls://mobilenet_v2")
    assert_refusal(err, url, f"{os.system.__module__}.system")
    assert not marker.exists()


# 4. Model-zoo style state dicts still load.

@pytest.mark.parametrize("zipfile_format", [True, False], ids=["zip", "legacy"])
def test_plain_state_dict_loads(safety, tmp_path, zipfile_format):
    from mmengine.runner import Runner

    source = Toy()
    state = OrderedDict((k, v.detach().clone()) for k, v in source.state_dict().items())
    path = tmp_path / "model_zoo.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zipfile_format)

    loaded = safety.load_checkpoint_safely(path)
    assert type(loaded) is OrderedDict and list(loaded) == list(state)
    runner = Runner(**runner_kwargs(tmp_path, f"zoo_{zipfile_format}_{tmp_path.name}",
                                    load_from=str(path)))
    runner.load_or_resume()
    assert_weights(runner.model, {k: v.tolist() for k, v in state.items()})


def test_install_is_idempotent_and_leaves_no_globals_behind(safety):
    from mmengine.runner import checkpoint as mmengine_checkpoint

    before = set(torch.serialization.get_safe_globals())
    safety.install()
    safety.install()
    loader = mmengine_checkpoint.CheckpointLoader._get_checkpoint_loader
    assert loader("work_dirs/x/epoch_1.pth") is safety.load_from_local
    assert loader("https://example.invalid/x.pth") is safety.load_from_http
    assert loader("s3://bucket/x.pth") is safety.load_from_ceph
    assert mmengine_checkpoint.load_from_http is safety.load_from_http
    assert set(torch.serialization.get_safe_globals()) == before
    assert not any(isinstance(g, tuple) and g[1] == "builtins.getattr" for g in before)
