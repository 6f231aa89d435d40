"""Pictures of a trained detector's output, laid out as ``mmdet.visualization``."""
from .gt_beside_predictions import draw_gt_beside_predictions

__all__ = ["draw_gt_beside_predictions"]
