"""Training and evaluation machinery, laid out as ``mmdet.engine``: the runner, ``hooks``,
safe checkpoint loading, and the operator's FLOP handle."""
from . import checkpoint_safety, flops
from .hooks import ChannelsLastHook
from .runner import DataCheckedRunner

__all__ = ["ChannelsLastHook", "DataCheckedRunner", "checkpoint_safety", "flops"]
