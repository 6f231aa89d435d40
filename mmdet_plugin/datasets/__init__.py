"""Data sets, laid out as ``mmdet.datasets``: ``CheckedVOCDataset`` and the synthetic
VOC-format generator (``python -m mmdet_plugin.datasets.synthetic_voc``)."""
from .checked_voc import CheckedVOCDataset

__all__ = ["CheckedVOCDataset"]
