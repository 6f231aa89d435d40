"""Data sets, laid out as ``mmdet.datasets``: ``CheckedVOCDataset``, the synthetic
VOC-format generator (``python -m mmdet_plugin.datasets.synthetic_voc``), the tree tiles,
selective-search proposal files (``python -m mmdet_plugin.datasets.selective_search``) and
the ``SelectiveSearchProposals`` pipeline step."""
from .checked_voc import CheckedVOCDataset
from .transforms import SelectiveSearchProposals

__all__ = ["CheckedVOCDataset", "SelectiveSearchProposals"]
