"""``SelectiveSearchProposals``: a pipeline step that computes an image's windows itself."""
from __future__ import annotations

from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ..selective_search import selective_search


@TRANSFORMS.register_module()
class SelectiveSearchProposals(BaseTransform):
    """Selective-search windows of the loaded image, in place of ``LoadProposals``.

    A proposal-based detector (``RCNN``, mmdet's ``FastRCNN``, ``MultiScaleSPPNet``
    without an RPN) reads its windows from a proposal file made for its data set; on a new
    image there is none (and mmdet's inference API then fails: mmdet issue #10676). This
    step makes them from the image, with the same function and order as the proposal files
    (``mmdet_plugin.datasets.selective_search``: OpenCV, fast mode, duplicates dropped,
    largest first), about 1 s per 400 x 400 image on one core. ``tools/infer.py`` puts it
    where the config's test pipeline has ``LoadProposals``.

    Required keys: ``img`` (H, W, 3) uint8 BGR, as ``LoadImageFromFile`` gives it.
    Added keys: ``proposals`` float32 (N, 4) x1 y1 x2 y2, ``proposals_scores`` zeros (N,),
    as ``LoadProposals`` adds them.

    Args:
        num_max_proposals: keep the first (largest) this many; None keeps all.
        mode: "fast" (the paper's) or "quality".
    """

    def __init__(self, num_max_proposals: Optional[int] = None, mode: str = "fast") -> None:
        if mode not in ("fast", "quality"):
            raise ValueError(f"mode must be 'fast' or 'quality', got {mode!r}")
        self.num_max_proposals, self.mode = num_max_proposals, mode

    def transform(self, results: dict) -> dict:
        image = results["img"]
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        boxes = selective_search(np.ascontiguousarray(image[..., :3]).astype(np.uint8), self.mode)
        if self.num_max_proposals is not None:
            boxes = boxes[:self.num_max_proposals]
        results["proposals"] = boxes
        results["proposals_scores"] = np.zeros(len(boxes), dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_max_proposals={self.num_max_proposals}, mode={self.mode!r})"
