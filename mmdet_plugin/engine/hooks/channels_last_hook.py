"""``ChannelsLastHook``: run a detector's convolutions on channels-last (NHWC) tensors.

On CPU, PyTorch's oneDNN convolutions work in NHWC; an NCHW model has its inputs and
outputs reordered around every convolution. With the model's weights and the batch in
``torch.channels_last`` those reorders go away, and so does the SPP extractor's copy (it
reads channels-last maps in place and returns channels-last gradients). Measured on the
demo detector (``configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py``, training steps on real
batches, 2 threads, 2-core x86_64 CPU, two interleaved runs): 0.380 -> 0.322 and
0.330 -> 0.268 s per iteration. The arithmetic is the same; sums may be ordered
differently, so results match NCHW runs to float rounding, not bit for bit.

MMEngine has no such switch, so the hook does three things in ``before_run`` (called by
``Runner.train``, ``val`` and ``test`` alike): converts the model's 4-D parameters and
buffers in place (``Module.to(memory_format=...)`` keeps the Parameter objects, so an
optimizer built before still holds them), wraps the model's data preprocessor so the
batched images it returns are channels-last, and gives every mmcv op module in the model
(``mmcv.ops``: RoIAlign, RoIPool, deformable convolutions...) NCHW-contiguous inputs.
Those kernels index their input as NCHW without checking its strides: mmcv 2.1.0's CPU
``roi_align`` on a channels-last map returns wrong values, silently (measured: up to 1.1
off on a 4 x 8 x 8 map), so an mmdet RoIAlign head trained with the hook but without
this guard learns nothing. Add it with ``custom_hooks = [dict(type='ChannelsLastHook')]``.
"""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Puts the model and its batches in channels-last memory format (see the module
    docstring); a model already converted is left as it is."""

    priority = "VERY_HIGH"

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, "_channels_last", False):
            return
        model.to(memory_format=torch.channels_last)
        preprocessor = model.data_preprocessor
        forward = preprocessor.forward

        def channels_last_forward(data, training: bool = False):
            out = forward(data, training)
            inputs = out.get("inputs") if isinstance(out, dict) else None
            if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
                out["inputs"] = inputs.contiguous(memory_format=torch.channels_last)
            return out

        preprocessor.forward = channels_last_forward
        for module in model.modules():
            if type(module).__module__.startswith("mmcv.ops"):
                module.register_forward_pre_hook(_nchw_inputs)
        model._channels_last = True


def _nchw_inputs(module, args):
    """Forward pre-hook of an mmcv op: its 4-D tensor arguments made NCHW-contiguous."""
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args)
