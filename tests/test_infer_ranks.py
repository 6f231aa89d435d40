"""``tools/infer.py --launcher pytorch`` under torchrun: two gloo ranks on CPU share out a
folder's images and a large image's windows, and write exactly what one process writes
(the same boxes, in the same order, the same JSON and picture bytes), each file once; a
rerun into a folder that holds a finished image skips it (the killed run's resume).

A random-init demo detector (ResNet-18, FPN), one torch thread per process in both runs:
the same float operations on the same windows, so the JSON must be bitwise equal."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet", reason="needs mmdet")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"
WINDOWS = ["--tile", "128", "--overlap", "16"]  # 300 x 260 px: 3 x 3 windows; the others: one each


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from PIL import Image

    import mmdet_plugin  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config

    base = tmp_path_factory.mktemp("ranks")
    torch.manual_seed(0)
    checkpoint = base / "random.pth"
    torch.save({"state_dict": MODELS.build(Config.fromfile(str(CONFIG)).model).state_dict(), "meta": {}}, checkpoint)
    folder = base / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (96, 80), "b.png": (120, 100), "big.png": (300, 260), "c.png": (64, 64)}.items():
        blocks = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)  # texture: boxes to find
        Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))[:h, :w]).save(folder / name)
    return base, checkpoint, folder


def _infer(prefix, checkpoint, folder, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(prefix + [str(ROOT / "tools" / "infer.py"), str(CONFIG), str(checkpoint), str(folder),
                                    "--out-dir", str(out), *WINDOWS, *extra],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.timeout(600)
def test_two_ranks_write_one_processs_outputs_and_skip_a_finished_image(job):
    base, checkpoint, folder = job
    one = _infer([sys.executable], checkpoint, folder, base / "one")
    # A killed run's folder: a.png finished (its JSON written last), the rest not.
    two = base / "two"
    for sub, name in (("preds", "a.json"), ("vis", "a.png")):
        (two / sub).mkdir(parents=True, exist_ok=True)
        (two / sub / name).write_bytes((base / "one" / sub / name).read_bytes())
    os.utime(two / "preds" / "a.json", (1e9, 1e9))
    ranks = _infer([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                   checkpoint, folder, two, "--launcher", "pytorch")
    log = ranks.stdout
    assert f"[1/4] {folder / 'a.png'}\n    done by an earlier run" in log
    assert (two / "preds" / "a.json").stat().st_mtime == 1e9  # not redone
    assert "2 ranks share out the windows and images" in log
    for k, name in enumerate(("b.png", "big.png", "c.png"), 2):  # rank 1's image too, printed once, by rank 0
        assert log.count(f"[{k}/4] {folder / name}\n") == 1, log
    assert "in 9 windows" in log and re.search(r"windows 11/11 of 3 images, \d+ s left", log), log
    for sub in ("preds", "vis"):
        want = sorted(p.name for p in (base / "one" / sub).iterdir())
        assert want == sorted(p.name for p in (two / sub).iterdir()) and len(want) == 4
        for name in want:  # bitwise: the same windows through the same float operations
            assert (two / sub / name).read_bytes() == (base / "one" / sub / name).read_bytes(), (sub, name)
    big = json.loads((two / "preds" / "big.json").read_text())
    assert big["sliced"]["windows"] == 9 and len(big["scores"]) > 0
    assert "in 9 windows" in one.stdout
