"""End to end through `mim`, as a user runs it, on a tiny generated data set: train on
CPU, kill the run mid-epoch, resume it, test the checkpoint, run DetInferencer."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MIM = Path(sys.executable).parent / "mim"
CONFIG = ROOT / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"

pytest.importorskip("mmdet", reason="needs mmdet")
pytestmark = pytest.mark.slow


def _options(root: Path) -> list[str]:
    opts = ["train_cfg.max_epochs=2", "param_scheduler.0.end=4", "default_hooks.logger.interval=1", "randomness.seed=0"]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts += [f"{loader}.dataset.data_root={root}/", f"{loader}.num_workers=0",
                 f"{loader}.persistent_workers=False", f"{loader}.batch_size=2"]
    return opts


def _mim(*args, cwd: Path) -> str:
    proc = subprocess.run([str(MIM), *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train 2 epochs of 12 iterations, killed at epoch 2 iteration 2, then resumed."""
    from mmdet_plugin.datasets.synthetic_voc import generate

    base = tmp_path_factory.mktemp("e2e")
    generate(base / "data", num_trainval=24, num_test=4, seed=3)
    work = base / "work"
    opts = _options(base / "data")
    cmd = [str(MIM), "train", "mmdet", str(CONFIG), "--work-dir", str(work), "--cfg-options", *opts]
    proc = subprocess.Popen(cmd, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    killed_at, log = None, []
    deadline = time.time() + 600
    for line in proc.stdout:
        log.append(line)
        if re.search(r"Epoch\(train\)\s+\[2\]\[\s*2/12\]", line):
            os.killpg(proc.pid, signal.SIGKILL)  # as a crash or a pre-empted job would
            killed_at = line
            break
        assert time.time() < deadline, "training did not reach epoch 2"
    proc.wait()
    assert killed_at, "".join(log[-50:])
    killed_files = sorted(p.name for p in work.glob("epoch_*.pth"))
    resumed = _mim("train", "mmdet", str(CONFIG), "--work-dir", str(work), "--resume",
                   "--cfg-options", *opts, cwd=base)
    return dict(base=base, work=work, opts=opts, killed_files=killed_files, resumed=resumed)


def test_killed_mid_epoch_keeps_the_last_checkpoint(run):
    assert run["killed_files"] == ["epoch_1.pth"]


def test_resume_continues_from_the_last_checkpoint(run):
    out = run["resumed"]
    assert re.search(r"resumed epoch: 1, iter: 12", out), out[-2000:]
    assert re.search(r"Epoch\(train\)\s+\[2\]\[\s*1/12\]", out)  # epoch 2 restarts at its beginning
    assert "Epoch(train) [1]" not in out  # epoch 1 is not trained again
    work = run["work"]
    assert (work / "epoch_1.pth").exists() and (work / "epoch_2.pth").exists()
    assert len([d for d in work.iterdir() if d.is_dir()]) == 2  # both runs' logs are kept


def test_mim_test_loads_the_checkpoint_and_reports_map(run):
    out = _mim("test", "mmdet", str(CONFIG), "--checkpoint", str(run["work"] / "epoch_2.pth"),
               "--work-dir", str(run["base"] / "test"), "--cfg-options", *run["opts"], cwd=run["base"])
    assert "pascal_voc/mAP" in out
    assert "| ellipse" in out  # our class names, not VOC's


def test_det_inferencer_runs_a_trained_checkpoint(run):
    from mmdet.apis import DetInferencer

    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    inferencer = DetInferencer(model=str(CONFIG), weights=str(run["work"] / "epoch_2.pth"), device="cpu",
                               show_progress=False)
    pred = inferencer(str(image), no_save_vis=True)["predictions"][0]
    assert set(pred) >= {"labels", "scores", "bboxes"}
    assert all(0 <= label < 5 for label in pred["labels"])


def test_checkpoints_name_no_module_of_this_project(run):
    """A Runner checkpoint refers to this project's code only by registry names and the
    ``custom_imports`` package name, never by a module path, so moving a module of
    ``spp_triton`` or ``mmdet_plugin`` cannot break a checkpoint saved before the move."""
    import torch

    from mmdet_plugin.engine.checkpoint_safety import load_checkpoint_safely

    path = str(run["work"] / "epoch_2.pth")
    pickled = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert any(g.startswith("mmengine.") for g in pickled), pickled  # the scan does see globals
    assert [g for g in pickled if g.split(".")[0] in ("spp_triton", "mmdet_plugin")] == []
    cfg = load_checkpoint_safely(path)["meta"]["cfg"]
    assert "SPPRoIExtractor" in cfg and "'mmdet_plugin'" in cfg
    assert re.findall(r"(?:spp_triton|mmdet_plugin)\.\w+", cfg) == []


def test_the_infer_tool_writes_pictures_and_json_for_a_folder(run, tmp_path):
    images = tmp_path / "mine"
    images.mkdir()
    for src in sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[:2]:
        (images / src.name).write_bytes(src.read_bytes())
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), str(CONFIG),
                           str(run["work"] / "epoch_2.pth"), str(images), "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in (out / "vis").iterdir()) == sorted(p.name for p in images.glob("*.jpg"))
    for pred_file in (out / "preds").glob("*.json"):
        pred = __import__("json").loads(pred_file.read_text())
        assert len(pred["bboxes"]) == len(pred["scores"]) == len(pred["labels"]) == len(pred["classes"])
        assert set(pred["classes"]) <= {"ellipse", "rectangle", "triangle", "cross", "ring"}
    assert len(list((out / "preds").glob("*.json"))) == 2


def test_the_infer_tool_refuses_bad_paths_and_proposal_models_without_loadproposals(run, tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "infer.py")]
    missing = subprocess.run(tool + [str(CONFIG), str(run["work"] / "epoch_2.pth"), str(tmp_path / "nope.jpg")],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "IMAGE_OR_FOLDER" in missing.stderr and "does not exist" in missing.stderr
    no_step = tmp_path / "rcnn_without_loadproposals.py"
    no_step.write_text(f"_base_ = ['{ROOT / 'configs/rcnn_vs_sppnet/rcnn_effnet-lite0-c4_ss_6e_synth-voc.py'}']\n"
                       "test_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), "
                       "dict(type='PackDetInputs')]))\n")
    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    refused = subprocess.run(tool + [str(no_step), str(run["work"] / "epoch_2.pth"), str(image)],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "'RCNN' takes proposals" in refused.stderr and "10676" in refused.stderr


@pytest.mark.skipif(not hasattr(__import__("cv2"), "ximgproc"), reason="needs opencv-contrib's selective search")
def test_the_infer_tool_runs_a_proposal_pipeline_on_new_images(run, tmp_path):
    """mmdet #10676: a test pipeline with LoadProposals fails in mmdet's inferencer. The tool
    computes selective-search windows instead; the trained two-stage detector uses given
    proposals in place of its RPN's, so its boxes must come from those windows."""
    config = tmp_path / "with_proposals.py"
    config.write_text(f"_base_ = ['{CONFIG}']\n"
                      "test_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), "
                      "dict(type='LoadProposals', num_max_proposals=None), dict(type='ProposalBroadcaster', "
                      "transforms=[dict(type='Resize', scale=(256, 256), keep_ratio=True)]), "
                      "dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', "
                      "'scale_factor'))]))\n"
                      "model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n")  # see _keeping_every_box
    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), str(config),
                           str(run["work"] / "epoch_2.pth"), str(image), "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=run["base"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "selective-search windows" in done.stdout
    pred = __import__("json").loads((out / "preds" / f"{image.stem}.json").read_text())
    assert len(pred["bboxes"]) == len(pred["scores"]) > 0


def test_gt_beside_predictions_draws_one_row_per_image(run, tmp_path):
    import argparse

    import mmcv
    from mmengine.config import Config, DictAction

    from mmdet_plugin.visualization import draw_gt_beside_predictions

    cfg = Config.fromfile(str(CONFIG))
    ns = argparse.Namespace(o=None)  # the run's --cfg-options, parsed as mim does
    DictAction(option_strings=[], dest="o")(None, ns, run["opts"])
    cfg.merge_from_dict(ns.o)
    out = draw_gt_beside_predictions(cfg, run["work"] / "epoch_2.pth", tmp_path / "pic.png", count=2)
    image = mmcv.imread(str(sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]))
    # Each row: the image with ground truth, then the image with predictions.
    assert mmcv.imread(str(out)).shape == (2 * image.shape[0], 2 * image.shape[1], 3)
    with pytest.raises(ValueError, match="count=9: the test split has only 4 images"):
        draw_gt_beside_predictions(cfg, run["work"] / "epoch_2.pth", tmp_path / "x.png", count=9)


def _keeping_every_box(tmp_path: Path, base: Path = CONFIG) -> Path:
    """``base`` with the bbox head's score threshold at 0: a 2-epoch model's scores depend on
    the machine's floating point (CI once found no box above 0.05 on an image where this
    machine found several), so a test that needs boxes keeps every one the head outputs."""
    config = tmp_path / f"{base.stem}_every_box.py"
    config.write_text(f"_base_ = ['{base}']\nmodel = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n")
    return config


def _infer(args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=600, **kwargs)


def test_unsliced_inference_equals_det_inferencer(run, tmp_path):
    """The array-fed pipeline of tools/infer.py (imagery.read decodes, LoadImageFromNDArray)
    gives DetInferencer's boxes for an image that runs whole: the same pixels, pipeline and
    model in one process."""
    from mmdet.apis import DetInferencer, init_detector
    from mmengine.config import Config

    from imagery.read import open_image
    from mmdet_plugin.apis import SlicedInferencer

    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[1]
    checkpoint = str(run["work"] / "epoch_2.pth")
    config = _keeping_every_box(tmp_path)
    want = DetInferencer(model=str(config), weights=checkpoint, device="cpu", show_progress=False)(
        str(image), no_save_vis=True)["predictions"][0]
    cfg = Config.fromfile(str(config))
    with open_image(image) as im:
        got = SlicedInferencer(init_detector(cfg, checkpoint, device="cpu"), cfg, None)(im)
    assert len(want["scores"]) == len(got["scores"]) > 0
    np.testing.assert_allclose(got["bboxes"], np.array(want["bboxes"]), atol=1e-3)
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)


def test_the_infer_tool_slices_a_large_image_into_native_windows(run, tmp_path):
    """Four test images side by side (512 x 512) in windows of at most 256 px sharing 64:
    3 x 3 windows of 214 px, boxes in the large image's pixels, the objects at their own size."""
    from PIL import Image

    sources = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[:4]
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in sources]
    big = tmp_path / "big.png"
    Image.fromarray(np.concatenate([np.concatenate(arrays[:2], 1), np.concatenate(arrays[2:], 1)], 0)).save(big)
    done = _infer([_keeping_every_box(tmp_path), run["work"] / "epoch_2.pth", big, "--out-dir", tmp_path / "out", "--tile", 256,
                   "--overlap", 64, "--merge", "ios"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "in 9 windows" in done.stdout and "windows 9/9" in done.stdout
    pred = json.loads((tmp_path / "out" / "preds" / "big.json").read_text())
    assert pred["sliced"] == dict(tile=256, overlap=64, merge="ios", merge_thr=0.5, windows=9)
    boxes = np.array(pred["bboxes"]).reshape(-1, 4)
    assert len(boxes) > 0 and boxes.min() >= 0 and boxes[:, 2].max() <= 512 and boxes[:, 3].max() <= 512
    assert (boxes[:, 0] > 256).any() and (boxes[:, 1] > 256).any()  # windows were moved into place
    assert Image.open(tmp_path / "out" / "vis" / "big.png").size == (512, 512)


def test_the_infer_tool_writes_the_good_images_of_a_folder_and_names_the_bad_ones(run, tmp_path):
    images = tmp_path / "mixed"
    images.mkdir()
    good = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    (images / "good.jpg").write_bytes(good.read_bytes())
    (images / "truncated.jpg").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    (images / "empty.png").write_bytes(b"")
    done = _infer([CONFIG, run["work"] / "epoch_2.pth", images, "--out-dir", tmp_path / "out"])
    assert done.returncode == 1, done.stderr[-3000:]
    assert "2 image(s) failed" in done.stderr and "Traceback" not in done.stderr
    assert f"{images / 'truncated.jpg'}: cannot read the image" in done.stderr
    assert f"{images / 'empty.png'}: the file is empty" in done.stderr
    assert [p.name for p in (tmp_path / "out" / "preds").iterdir()] == ["good.json"]


def test_the_infer_tool_refuses_bad_tiles(run, tmp_path):
    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    checkpoint = run["work"] / "epoch_2.pth"
    overlap = _infer([CONFIG, checkpoint, image, "--tile", 128, "--overlap", 128])
    assert overlap.returncode == 2 and "--overlap must be in [0, tile) = [0, 128), got 128" in overlap.stderr
    orphan = _infer([CONFIG, checkpoint, image, "--overlap", 32])
    assert orphan.returncode == 2 and "--overlap need --tile" in orphan.stderr
    merge = _infer([CONFIG, checkpoint, image, "--tile", 128, "--merge", "wbf"])
    assert merge.returncode == 2 and "--merge: invalid choice: 'wbf'" in merge.stderr
    both = _infer([CONFIG, checkpoint, image, "--tile", 128, "--no-slicing"])
    assert both.returncode == 2 and "--no-slicing runs every image whole: it takes no --tile" in both.stderr


def test_an_image_no_larger_than_the_tile_is_one_native_window(run, tmp_path):
    """--tile 400 on a 256 px image: one window at the image's own resolution, not a failure
    and not the config's Resize."""
    image = sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]
    done = _infer([_keeping_every_box(tmp_path), run["work"] / "epoch_2.pth", image, "--tile", 400,
                   "--out-dir", tmp_path / "out"])
    assert done.returncode == 0, done.stderr[-3000:]
    pred = json.loads((tmp_path / "out" / "preds" / f"{image.stem}.json").read_text())
    assert "sliced" not in pred and len(pred["scores"]) > 0


@pytest.mark.skipif(__import__("importlib").util.find_spec("rasterio") is None, reason="needs rasterio (requirements/geo.txt)")
def test_the_infer_tool_writes_map_coordinates_for_a_geotiff(run, tmp_path):
    """A georeferenced TIFF goes through rasterio: the JSON in pixels, a PNG picture, and a
    GeoJSON whose polygons are those boxes through the raster's transform, in its CRS."""
    import rasterio
    from affine import Affine
    from PIL import Image

    rgb = np.asarray(Image.open(sorted((run["base"] / "data" / "VOCsynth" / "JPEGImages").glob("*.jpg"))[0]).convert("RGB"))
    transform = Affine(0.5, 0, 500000.0, 0, -0.5, 4100000.0)
    tif = tmp_path / "ortho.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    done = _infer([_keeping_every_box(tmp_path), run["work"] / "epoch_2.pth", tif, "--out-dir", tmp_path / "out"])
    assert done.returncode == 0, done.stderr[-3000:]
    pred = json.loads((tmp_path / "out" / "preds" / "ortho.json").read_text())
    geo = json.loads((tmp_path / "out" / "preds" / "ortho.geojson").read_text())
    assert geo["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    assert len(geo["features"]) == len(pred["bboxes"]) > 0
    x1, y1, x2, y2 = pred["bboxes"][0]
    ring = np.array(geo["features"][0]["geometry"]["coordinates"][0])
    np.testing.assert_allclose(ring[0], [500000.0 + 0.5 * x1, 4100000.0 - 0.5 * y1])
    np.testing.assert_allclose(ring[2], [500000.0 + 0.5 * x2, 4100000.0 - 0.5 * y2])
    assert (tmp_path / "out" / "vis" / "ortho.png").is_file()
