"""Ground truth beside a detector's predictions on a data set's first images, one per row."""
from __future__ import annotations

from pathlib import Path


def draw_gt_beside_predictions(config, checkpoint, out_png, count: int = 4, score_thr: float = 0.5,
                               split: str = "test", title: str | None = None) -> Path:
    """Draws ground truth (left) beside the predictions scoring at least ``score_thr``
    (right) on the first ``count`` images of the config's ``{split}_dataloader`` with
    MMDetection's DetLocalVisualizer, one image per row, into ``out_png``.

    Args:
        config: a config path or a loaded ``mmengine.Config`` (its test pipeline must load
            the boxes after resizing, as the project's configs do, so that ground truth is in
            the original image's pixels like the rescaled predictions).
        checkpoint: the trained weights (``.pth``).
        out_png: where the picture goes (folders are created).
        title: printed with the output path.
    Returns the path written.
    """
    import mmcv
    import numpy as np
    import torch
    from mmdet.apis import init_detector
    from mmdet.registry import DATASETS, VISUALIZERS
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))  # imports mmdet_plugin
    model = init_detector(cfg, str(checkpoint), device="cpu")
    dataset = DATASETS.build(cfg[f"{split}_dataloader"].dataset)
    if count > len(dataset):
        raise ValueError(f"count={count}: the {split} split has only {len(dataset)} images")
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    rows = []
    for i in range(count):
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([dataset[i]]))[0]
        image = mmcv.imread(sample.img_path, channel_order="rgb")
        visualizer.add_datasample(Path(sample.img_path).stem, image, data_sample=sample, draw_gt=True,
                                  draw_pred=True, pred_score_thr=score_thr, show=False)
        rows.append(visualizer.get_image())
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    mmcv.imwrite(np.concatenate(rows, axis=0)[:, :, ::-1], str(out_png))
    print(f"{title or 'ground truth (left) and detections (right)'} on {count} {split} images: {out_png}")
    return out_png
