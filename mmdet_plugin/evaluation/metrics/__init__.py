from .voc_size_metric import VOCSizeMetric

__all__ = ["VOCSizeMetric"]
