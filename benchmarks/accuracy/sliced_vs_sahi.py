"""Our sliced inference beside sahi's, side by side on the whole held-out tree photograph.

sahi 0.12.8 (not in make setup: ``.venv/bin/pip install --no-deps sahi==0.12.8 fire termcolor
shapely``) is the library users of sliced prediction know (``get_sliced_prediction`` with an
``MmdetDetectionModel``). Both run the same checkpoint on the same windows at native
resolution (sahi's overlap is a ratio: overlap / tile; its ``image_size`` must be the tile,
or its mmdet wrapper resizes every slice to the config's test scale), each with its own
merge: ours with the config's ``sliced_infer_cfg``, sahi with its default (GREEDYNMM by
intersection over the smaller box, 0.5) and with NMS by IoU 0.5. sahi's whole-image extra
prediction (``perform_standard_pred``) is off, since it resizes the photograph to 400 px
(what slicing is for avoiding). Every box is kept (score >= 0.05, the detector's own
threshold) so that AP sees the full ranking. Our ``join`` at 0.5 (sahi's default rule) is a
row too: the test figures compare implementations, they choose nothing. Times: wall clock of
each whole call, medians of --reps interleaved runs in one process after one warm-up run.
Writes benchmarks/results/sliced_vs_sahi.{csv,md}.
"""
from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

from common import (RESULTS, ROOT, detector_args, interleaved, machine, markdown_table, parser,
                    setup_threads, tree_detector, write_csv, write_text)
from sliced_trees import ap40_50, ground_truth


def main():
    p = parser(__doc__, reps=3, threads=2, quick=False)
    detector_args(p)
    a = p.parse_args()
    setup_threads(a.threads)
    try:
        import sahi
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
    except ImportError:
        raise SystemExit("needs sahi: .venv/bin/pip install --no-deps sahi==0.12.8 fire termcolor shapely")
    from imagery.read import open_image
    from mmdet_plugin.apis import SlicedInferencer, SliceSettings
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    cfg, model, checkpoint = tree_detector(a)
    settings = SliceSettings.from_config(cfg)
    image_path = deepforest_data() / TEST_IMAGE
    # image_size: sahi's mmdet wrapper keeps the config's Resize (400 px here), so without it
    # every 600 px slice would be shrunk to 400 px, not run at native resolution.
    sahi_model = AutoDetectionModel.from_pretrained(model_type="mmdet", model_path=str(checkpoint),
                                                    config_path=str(ROOT / a.config), device="cpu",
                                                    confidence_threshold=0.05, image_size=settings.tile)
    ratio = settings.overlap / settings.tile

    def run_sahi(postprocess: str, metric: str, _image) -> dict:
        result = get_sliced_prediction(str(image_path), sahi_model, slice_height=settings.tile,
                                       slice_width=settings.tile, overlap_height_ratio=ratio,
                                       overlap_width_ratio=ratio, perform_standard_pred=False,
                                       postprocess_type=postprocess, postprocess_match_metric=metric,
                                       postprocess_match_threshold=0.5, force_postprocess_type=True, verbose=0)
        objs = result.object_prediction_list
        return dict(bboxes=np.array([o.bbox.to_xyxy() for o in objs], np.float32).reshape(-1, 4),
                    scores=np.array([o.score.value for o in objs], np.float32), labels=np.zeros(len(objs), np.int64))

    providers = {f"ours ({settings.merge} > {settings.merge_thr}: the config's, chosen on val)":
                 SlicedInferencer(model, cfg, settings),
                 "ours (join > 0.5: sahi's default rule)":
                 SlicedInferencer(model, cfg, SliceSettings(settings.tile, settings.overlap, "join", 0.5)),
                 "sahi (GREEDYNMM, IOS > 0.5: its default)": partial(run_sahi, "GREEDYNMM", "IOS"),
                 "sahi (NMS, IOU > 0.5)": partial(run_sahi, "NMS", "IOU")}
    with open_image(image_path) as image:
        preds = {k: fn(image) for k, fn in providers.items()}  # the warm-up, and the boxes scored
        times = interleaved({k: partial(fn, image) for k, fn in providers.items()}, a.reps, warmup=0)
    gt, base = ground_truth(image_path), times[next(iter(providers))]
    rows = [dict(provider=k, sahi=sahi.__version__, tile=settings.tile, overlap=settings.overlap,
                 boxes=len(preds[k]["scores"]), **ap40_50([preds[k]], [gt]), seconds=times[k],
                 ratio_to_ours=times[k] / base) for k in providers]
    write_csv(RESULTS / "sliced_vs_sahi.csv", rows)
    write_text(RESULTS / "sliced_vs_sahi.md", f"The whole held-out photograph (1249 x 1035 px), {settings.tile} px "
               f"windows, overlap {settings.overlap}; checkpoint {checkpoint.name}; {machine()}; medians of {a.reps} "
               "interleaved runs.\n\n" + markdown_table(
                   ["provider", "boxes", "AP40", "AP50", "s per image", "time / ours"],
                   [[r["provider"], r["boxes"], f"{r['AP40']:.3f}", f"{r['AP50']:.3f}", f"{r['seconds']:.2f}",
                     f"{r['ratio_to_ours']:.2f}"] for r in rows]))


if __name__ == "__main__":
    main()
