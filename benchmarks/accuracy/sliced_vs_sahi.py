"""Our sliced inference beside sahi's, side by side on the whole held-out tree photograph.

    .venv/bin/pip install --no-deps sahi==0.12.8 fire termcolor shapely   # not in make setup
    .venv/bin/python benchmarks/accuracy/sliced_vs_sahi.py [--checkpoint ...] [--tile 400 --overlap 50]

sahi 0.12.8 is the library users of sliced prediction know (``get_sliced_prediction``
with an ``MmdetDetectionModel``). Both run the same checkpoint on the same windows at
native resolution (sahi's overlap is a ratio: overlap / tile; its ``image_size`` must be
the tile, or its mmdet wrapper resizes every slice to the config's test scale), each with
its own merge:
ours with the config's ``sliced_infer_cfg``, sahi with its default (GREEDYNMM by
intersection over the smaller box, 0.5) and with NMS by IoU 0.5. sahi's whole-image
extra prediction (``perform_standard_pred``) is off, since it resizes the photograph to
400 px (what slicing is for avoiding). Every box is kept (score >= 0.05, the detector's
own threshold) so that AP sees the full ranking. Our ``join`` at 0.5 (sahi's default rule)
is a row too: the test figures compare implementations, they choose nothing. Times are medians of --reps interleaved
runs in one process. Writes benchmarks/results/sliced_vs_sahi.{csv,md}.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

from common import RESULTS, ROOT, machine, parser, setup_threads, write_csv, write_text
from sliced_trees import CONFIG, average_precision, ground_truth


def main():
    p = parser(__doc__, reps=3, threads=2)
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--checkpoint", help="default: work_dirs/demo-real's last checkpoint")
    a = p.parse_args()
    setup_threads(a.threads)
    try:
        from sahi import AutoDetectionModel
        from sahi.predict import get_sliced_prediction
    except ImportError:
        raise SystemExit("needs sahi: .venv/bin/pip install --no-deps sahi==0.12.8 fire termcolor shapely")
    import sahi
    from mmdet.apis import init_detector
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_plugin  # noqa: F401
    from mmdet_plugin.apis import SlicedInferencer, SliceSettings
    from imagery.read import open_image
    from mmdet_plugin.datasets.trees import TEST_IMAGE, deepforest_data

    init_default_scope("mmdet")
    config = ROOT / a.config
    checkpoint = Path(a.checkpoint or (ROOT / "work_dirs/demo-real/last_checkpoint").read_text().strip())
    cfg = Config.fromfile(str(config))
    settings = SliceSettings.from_config(cfg)
    image_path = deepforest_data() / TEST_IMAGE
    gt = ground_truth(image_path)

    model = init_detector(cfg, str(checkpoint), device="cpu")
    ours = SlicedInferencer(model, cfg, settings)
    ours_join = SlicedInferencer(model, cfg, SliceSettings(settings.tile, settings.overlap, "join", 0.5))
    # image_size: sahi's mmdet wrapper keeps the config's Resize (400 px here), so without it
    # every 600 px slice would be shrunk to 400 px, not run at native resolution.
    sahi_model = AutoDetectionModel.from_pretrained(model_type="mmdet", model_path=str(checkpoint),
                                                    config_path=str(config), device="cpu", confidence_threshold=0.05,
                                                    image_size=settings.tile)
    ratio = settings.overlap / settings.tile

    def run_ours(image):
        return ours(image)

    def run_ours_join(image):
        return ours_join(image)

    def run_sahi(postprocess, metric):
        def run(_):
            result = get_sliced_prediction(str(image_path), sahi_model, slice_height=settings.tile,
                                           slice_width=settings.tile, overlap_height_ratio=ratio,
                                           overlap_width_ratio=ratio, perform_standard_pred=False,
                                           postprocess_type=postprocess, postprocess_match_metric=metric,
                                           postprocess_match_threshold=0.5, force_postprocess_type=True, verbose=0)
            objs = result.object_prediction_list
            return dict(bboxes=np.array([o.bbox.to_xyxy() for o in objs], np.float32).reshape(-1, 4),
                        scores=np.array([o.score.value for o in objs], np.float32))
        return run

    providers = {f"ours ({settings.merge} > {settings.merge_thr}: the config's, chosen on val)": run_ours,
                 "ours (join > 0.5: sahi's default rule)": run_ours_join,
                 "sahi (GREEDYNMM, IOS > 0.5: its default)": run_sahi("GREEDYNMM", "IOS"),
                 "sahi (NMS, IOU > 0.5)": run_sahi("NMS", "IOU")}
    times = {k: [] for k in providers}
    preds = {}
    with open_image(image_path) as image:
        for k, fn in providers.items():  # warm-up, and the boxes scored
            preds[k] = fn(image)
        for _ in range(a.reps):
            for k, fn in providers.items():
                start = time.perf_counter()
                fn(image)
                times[k].append(time.perf_counter() - start)
    base = statistics.median(times[next(iter(providers))])
    rows = [dict(provider=k, sahi=sahi.__version__, tile=settings.tile, overlap=settings.overlap,
                 boxes=len(preds[k]["scores"]), AP40=average_precision([preds[k]], [gt], 0.4),
                 AP50=average_precision([preds[k]], [gt], 0.5), seconds=statistics.median(times[k]),
                 ratio_to_ours=statistics.median(times[k]) / base) for k in providers]
    write_csv(RESULTS / "sliced_vs_sahi.csv", rows)
    table = (f"The whole held-out photograph (1249 x 1035 px), {settings.tile} px windows, overlap {settings.overlap}; "
             f"checkpoint {checkpoint.name}; {machine()}; medians of {a.reps} interleaved runs.\n\n"
             "| provider | boxes | AP40 | AP50 | s per image | time / ours |\n|---|---|---|---|---|---|\n")
    table += "".join(f"| {r['provider']} | {r['boxes']} | {r['AP40']:.3f} | {r['AP50']:.3f} | {r['seconds']:.2f} | "
                     f"{r['ratio_to_ours']:.2f} |\n" for r in rows)
    write_text(RESULTS / "sliced_vs_sahi.md", table)


if __name__ == "__main__":
    main()
