"""Data transforms, laid out as ``mmdet.datasets.transforms``."""
from .selective_search_proposals import SelectiveSearchProposals

__all__ = ["SelectiveSearchProposals"]
