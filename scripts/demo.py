"""`make demo`: train the SPPNet demo detector on CPU, test it, draw its detections.

1. generate the embedded synthetic VOC-format set under data/synth_voc (if missing);
2. `mim train mmdet configs/sppnet_r18-w16_fpn_24e_synth-voc.py` (progress and ETA in the log);
3. `mim test` the last checkpoint on the held-out split (prints the VOC mAP table);
4. draw ground truth beside the detections on a few test images with MMDetection's
   visualizer into work_dirs/demo/detections.png.
Everything is written under work_dirs/demo; a second run retrains from scratch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = "configs/sppnet_r18-w16_fpn_24e_synth-voc.py"
DATA = ROOT / "data" / "synth_voc"


def run(cmd: list[str]) -> None:
    print("\n$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def draw(config: str, checkpoint: Path, out_png: Path, count: int = 4) -> None:
    """Ground truth (left) beside the predictions (right) on the first ``count`` test
    images, drawn by MMDetection's DetLocalVisualizer, one image per row."""
    import mmcv
    import numpy as np
    import torch
    from mmdet.apis import init_detector
    from mmdet.registry import DATASETS, VISUALIZERS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    cfg = Config.fromfile(str(ROOT / config))  # imports mmdet_plugin (custom_imports)
    model = init_detector(cfg, str(checkpoint), device="cpu")
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    rows = []
    for i in range(count):
        with torch.no_grad():
            # The test pipeline loads boxes after resizing, so gt_instances are in the
            # original image's pixels, like the rescaled predictions.
            sample = model.test_step(pseudo_collate([dataset[i]]))[0]
        image = mmcv.imread(sample.img_path, channel_order="rgb")
        visualizer.add_datasample(Path(sample.img_path).stem, image, data_sample=sample, draw_gt=True,
                                  draw_pred=True, pred_score_thr=0.5, show=False)
        rows.append(visualizer.get_image())
    mmcv.imwrite(np.concatenate(rows, axis=0)[:, :, ::-1], str(out_png))
    print(f"ground truth (left) and detections (right) on {len(rows)} test images: {out_png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs (quick runs)")
    a = p.parse_args()
    # The held-out split is evaluated once, by `mim test` below: no validation in training.
    extra = ["--cfg-options", "train_cfg.val_interval=100000"]
    if a.epochs:
        extra.append(f"train_cfg.max_epochs={a.epochs}")
    work = ROOT / a.work_dir
    start = time.time()
    if not (DATA / "VOCsynth/ImageSets/Main/val.txt").exists():
        run([sys.executable, "-m", "mmdet_plugin.datasets.synthetic_voc", str(DATA.relative_to(ROOT))])
    mim = str(BIN / "mim")
    run([mim, "train", "mmdet", a.config, "--work-dir", a.work_dir, *extra])
    checkpoint = Path((work / "last_checkpoint").read_text().strip())
    run([mim, "test", "mmdet", a.config, "--checkpoint", str(checkpoint), "--work-dir",
         str(work / "test")])
    draw(a.config, checkpoint, work / "detections.png")
    print(f"\ndemo finished in {time.time() - start:.0f} s; logs, checkpoints and the PNG are in {a.work_dir}")


if __name__ == "__main__":
    main()
