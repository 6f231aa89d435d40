"""The ``spp_triton::spp_roi_pool`` operator: registration, fake kernels and autograd.

Registered with ``torch.library.custom_op`` so that ``torch.compile(fullgraph=True)``
traces through it (the fake kernels give shapes) and the profiler shows it by name.
The backward is a second custom op, so compiled graphs keep it opaque too.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .registry import BACKENDS, memory_format
from .geometry import Mode, PoolSpec


@torch.library.custom_op("spp_triton::spp_roi_pool", mutates_args=())
def spp_roi_pool_op(features: list[Tensor], rois: Tensor, roi_levels: Tensor,
                    spatial_scales: list[float], pyramid: list[int], mode: str, projection: str,
                    sampling: str, sampling_ratio: int, aligned: bool, backend: str,
                    deterministic: bool) -> tuple[Tensor, Tensor]:
    """Returns (out (K, C, B), argmax (K, C, B) int32; argmax is (0,) in avg mode).

    Arguments are already checked by ``spp_triton.spp_roi_pool``; ``backend`` names an
    entry of ``registry.BACKENDS`` (resolved, never "auto"), whose module implements the
    backend contract.
    """
    spec = PoolSpec.make(pyramid, mode, projection, spatial_scales, sampling, sampling_ratio, aligned)
    out, argmax = BACKENDS[backend].impl().forward(list(features), rois, roi_levels, spec, deterministic)
    if argmax is None:
        argmax = torch.empty(0, dtype=torch.int32, device=out.device)
    return out, argmax


@spp_roi_pool_op.register_fake
def _(features, rois, roi_levels, spatial_scales, pyramid, mode, projection, sampling, sampling_ratio, aligned,
      backend, deterministic):
    k, c = rois.shape[0], features[0].shape[1]
    bins = sum(n * n for n in pyramid)
    out = features[0].new_empty((k, c, bins))
    is_max = Mode.parse("mode", mode) == Mode.MAX
    argmax = features[0].new_empty((k, c, bins) if is_max else (0,), dtype=torch.int32)
    return out, argmax


@torch.library.custom_op("spp_triton::spp_roi_pool_backward", mutates_args=())
def spp_roi_pool_backward_op(grad_out: Tensor, argmax: Tensor, rois: Tensor, roi_levels: Tensor,
                             level_shapes: list[int], level_strides: list[int], dtype: torch.dtype,
                             spatial_scales: list[float], pyramid: list[int], mode: str, projection: str,
                             sampling: str, sampling_ratio: int, aligned: bool, backend: str,
                             deterministic: bool) -> list[Tensor]:
    """Per-level gradients, in the features' layouts; ``level_shapes`` and ``level_strides``
    are (N, C, H, W) sizes and strides of every level, flattened."""
    spec = PoolSpec.make(pyramid, mode, projection, spatial_scales, sampling, sampling_ratio, aligned)
    # Meta tensors carry shape, strides (the layout) and dtype without memory.
    feats_meta = [torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                  for shape, stride in _levels(level_shapes, level_strides)]
    return BACKENDS[backend].impl().backward(grad_out, argmax if spec.mode == Mode.MAX else None, feats_meta,
                                             rois, roi_levels, spec, deterministic)


@spp_roi_pool_backward_op.register_fake
def _(grad_out, argmax, rois, roi_levels, level_shapes, level_strides, dtype, spatial_scales, pyramid, mode,
      projection, sampling, sampling_ratio, aligned, backend, deterministic):
    return [torch.empty_strided(shape, stride, dtype=dtype, device=grad_out.device)
            for shape, stride in _levels(level_shapes, level_strides)]


def _levels(level_shapes, level_strides):
    return [(level_shapes[i:i + 4], level_strides[i:i + 4]) for i in range(0, len(level_shapes), 4)]


def _setup_context(ctx, inputs, output):
    features, rois, roi_levels, scales, pyramid, mode, projection, sampling, sampling_ratio, aligned, backend, \
        deterministic = inputs
    ctx.save_for_backward(rois, roi_levels, output[1])
    ctx.level_shapes = [d for f in features for d in f.shape]
    fmt = memory_format(features)  # the layout every backend returns gradients in
    ctx.level_strides = [d for f in features for d in torch.empty(f.shape, device="meta", memory_format=fmt).stride()]
    ctx.dtype = features[0].dtype
    ctx.config = (list(scales), list(pyramid), mode, projection, sampling, sampling_ratio, aligned, backend,
                  deterministic)
    ctx.mark_non_differentiable(output[1])
    # argmax never gets a gradient; without this autograd would pass backward a zero
    # tensor shaped like it (K * C * B int32), an output-sized allocation per call.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_argmax):
    rois, roi_levels, argmax = ctx.saved_tensors
    rest = (None,) * 11  # no gradient for the other inputs
    if grad_out is None:  # gradcheck's "undefined output gradient" case
        return ([None] * (len(ctx.level_shapes) // 4), *rest)
    grads = spp_roi_pool_backward_op(grad_out.contiguous(), argmax, rois, roi_levels,
                                     ctx.level_shapes, ctx.level_strides, ctx.dtype, *ctx.config)
    return (list(grads), *rest)


spp_roi_pool_op.register_autograd(_backward, setup_context=_setup_context)
