"""`make demo` / `make demo-real`: train an SPPNet detector on CPU, test it, draw its detections.

1. prepare the data set if missing: the generated synthetic VOC set under data/synth_voc
   (``--data synth``, `make demo`), or the real tree-crown tiles cut from the deepforest
   wheel's photographs under data/trees (``--data trees``, `make demo-real`);
2. `mim train mmdet <config>`: the narrow ResNet-18 FPN detector from random init on the
   synthetic set, or the ImageNet-pretrained EfficientNet-Lite0 FPN fine-tuned on the
   trees (progress and ETA in the log);
3. `mim test` the last checkpoint on the held-out split (prints the AP table);
4. draw ground truth beside the detections on a few test images with MMDetection's
   visualizer into <work-dir>/detections.png.
Everything is written under the work dir; a second run retrains from scratch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# --data: (config, work dir, the file that exists once the data is prepared, the command that prepares it)
DEMOS = {
    "synth": ("configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py", "work_dirs/demo",
              "data/synth_voc/VOCsynth/ImageSets/Main/val.txt",
              ["-m", "mmdet_plugin.datasets.synthetic_voc", "data/synth_voc"]),
    "trees": ("configs/pretrained_effnet/sppnet_effnet-lite0_fpn_36e_trees-voc.py", "work_dirs/demo-real",
              "data/trees/VOCtrees/ImageSets/Main/test.txt", ["-m", "mmdet_plugin.datasets.trees", "data/trees"]),
}


def run(cmd: list[str]) -> None:
    print("\n$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(DEMOS), default="synth",
                   help="synth: generated shapes, from random init; trees: real photographs, ImageNet-pretrained")
    p.add_argument("--config", help="default: the --data set's SPPNet config")
    p.add_argument("--work-dir", help="default: work_dirs/demo (synth) or work_dirs/demo-real (trees)")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs (quick runs)")
    a = p.parse_args()
    config, work_dir, prepared, prepare = DEMOS[a.data]
    a.config, a.work_dir = a.config or config, a.work_dir or work_dir
    # The held-out split is evaluated once, by `mim test` below: no validation in training.
    extra = ["--cfg-options", "train_cfg.val_interval=100000"]
    if a.epochs:
        extra.append(f"train_cfg.max_epochs={a.epochs}")
    work = ROOT / a.work_dir
    start = time.time()
    if not (ROOT / prepared).exists():
        run([sys.executable, *prepare])
    mim = str(BIN / "mim")
    run([mim, "train", "mmdet", a.config, "--work-dir", a.work_dir, *extra])
    checkpoint = Path((work / "last_checkpoint").read_text().strip())
    run([mim, "test", "mmdet", a.config, "--checkpoint", str(checkpoint), "--work-dir",
         str(work / "test")])
    from mmdet_plugin.visualization import draw_gt_beside_predictions

    draw_gt_beside_predictions(ROOT / a.config, checkpoint, work / "detections.png", score_thr=0.5)
    print(f"\ndemo finished in {time.time() - start:.0f} s; logs, checkpoints and the PNG are in {a.work_dir}")


if __name__ == "__main__":
    main()
