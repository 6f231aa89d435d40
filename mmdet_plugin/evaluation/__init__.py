"""Evaluation, laid out as ``mmdet.evaluation``: ``VOCSizeMetric`` (VOC AP per object-size
bin, counted in feature-map cells)."""
from .metrics import VOCSizeMetric

__all__ = ["VOCSizeMetric"]
