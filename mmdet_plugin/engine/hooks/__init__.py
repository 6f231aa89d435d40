from .channels_last_hook import ChannelsLastHook

__all__ = ["ChannelsLastHook"]
