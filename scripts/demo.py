"""`make demo`: train the SPPNet demo detector on CPU, test it, draw its detections.

1. generate the embedded synthetic VOC-format set under data/synth_voc (if missing);
2. `mim train mmdet configs/sppnet_r18-w16_fpn_24e_synth-voc.py` (progress and ETA in the log);
3. `mim test` the last checkpoint on the held-out split (prints the VOC mAP table);
4. draw detections on a few test images with MMDetection's visualizer into
   work_dirs/demo/detections.png.
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
    import mmcv
    import numpy as np
    from mmdet.apis import DetInferencer

    names = (DATA / "VOCsynth/ImageSets/Main/test.txt").read_text().split()[:count]
    images = [str(DATA / "VOCsynth/JPEGImages" / f"{n}.jpg") for n in names]
    inferencer = DetInferencer(model=str(ROOT / config), weights=str(checkpoint), device="cpu",
                               show_progress=False)
    result = inferencer(images, return_vis=True, pred_score_thr=0.5, no_save_vis=True)
    tiles = result["visualization"]
    mmcv.imwrite(np.concatenate(tiles, axis=1)[:, :, ::-1], str(out_png))
    print(f"detections drawn on {len(tiles)} test images: {out_png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs (quick runs)")
    a = p.parse_args()
    extra = ["--cfg-options", f"train_cfg.max_epochs={a.epochs}"] if a.epochs else []
    work = ROOT / a.work_dir
    start = time.time()
    if not (DATA / "VOCsynth/ImageSets/Main/test.txt").exists():
        run([sys.executable, "-m", "mmdet_plugin.synthetic_voc", str(DATA.relative_to(ROOT))])
    mim = str(BIN / "mim")
    run([mim, "train", "mmdet", a.config, "--work-dir", a.work_dir, *extra])
    checkpoint = Path((work / "last_checkpoint").read_text().strip())
    run([mim, "test", "mmdet", a.config, "--checkpoint", str(checkpoint), "--work-dir",
         str(work / "test")])
    draw(a.config, checkpoint, work / "detections.png")
    print(f"\ndemo finished in {time.time() - start:.0f} s; logs, checkpoints and the PNG are in {a.work_dir}")


if __name__ == "__main__":
    main()
