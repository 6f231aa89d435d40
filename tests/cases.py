"""Inputs and comparisons shared by every backend's tests.

Every backend is run on the same RoI list (``make_rois``: random boxes plus
``SPECIAL_BOXES``) and judged against ``tests/reference.py``.
"""
import importlib.util
import os

import torch

# Where the Triton backend's tests put their tensors: the GPU (compiled kernels), or the
# CPU under TRITON_INTERPRET=1 (tests/conftest.py decides before triton is imported).
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
TRITON_DEVICE = torch.device("cpu" if INTERPRET or not torch.cuda.is_available() else "cuda")
HAS_TRITON = importlib.util.find_spec("triton") is not None
# The device each registered backend's tests run on (a new backend adds its entry here).
BACKEND_DEVICES = {"torch": torch.device("cpu"), "triton": TRITON_DEVICE}

# Boxes every backend must get right, in input pixels on an image of about 80 x 70.
# Column 0 is a batch index; make_rois takes it modulo the number of images.
SPECIAL_BOXES = torch.tensor([
    [0, -50, -40, 400, 300],   # larger than every map
    [1, -30, 10, 25, 40],      # partly outside (top-left)
    [1, 300, 200, 500, 400],   # wholly outside (clamps to the bottom-right corner)
    [0, -90, -90, -20, -10],   # wholly outside (top-left)
    [1, 40, 30, 10, 5],        # degenerate: x2 < x1, y2 < y1
    [0, 20.5, 20, 20.5, 20],   # a point
    [1, 3.7, 5.2, 4.1, 55.9],  # one column wide
    [0, 0, 0, 67, 3],          # one row high
], dtype=torch.float32)

# Four FPN-like levels, the last one 1 x 1; and one single map.
FPN_SHAPES = [(20, 17), (10, 9), (5, 4), (1, 1)]
FPN_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
SINGLE_SHAPES = [(13, 11)]
SINGLE_SCALES = (1 / 4,)

_INT_VIEW = {8: torch.int64, 4: torch.int32, 2: torch.int16}


def make_rois(k_rand=6, n_images=2, levels=4, seed=1, extent=55.0):
    """(rois (k_rand + 8, 5) float32, roi_levels (K,) int64): random boxes inside an
    ``extent`` x ``extent`` px square, then ``SPECIAL_BOXES``."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k_rand, 2, generator=g) * extent
    wh = torch.rand(k_rand, 2, generator=g) * (extent + 10) + 1
    rand = torch.cat([torch.randint(0, n_images, (k_rand, 1), generator=g).float(), xy, xy + wh], 1)
    special = SPECIAL_BOXES.clone()
    special[:, 0] = special[:, 0] % n_images
    rois = torch.cat([rand, special])
    return rois, torch.randint(0, levels, (rois.shape[0],), generator=g)


def make_features(shapes=FPN_SHAPES, c=5, dtype=torch.float32, n=2, seed=0, ties=True):
    """One (n, c, h, w) map per shape. With ``ties`` half the elements are small integers,
    so bins hold equal values (the first-maximum rule) and zeros of both signs."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in shapes:
        x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
        if ties:
            small = torch.randint(-2, 3, (n, c, h, w), generator=g).double()
            small = torch.where(torch.rand(n, c, h, w, generator=g) < 0.5, -small, small)  # -0.0 too
            x = torch.where(torch.rand(n, c, h, w, generator=g) < 0.5, small, x)
        out.append(x.to(dtype))
    return out


def bits(t):
    """The raw bits of a float tensor as the same-sized integer type."""
    return t.contiguous().view(_INT_VIEW[t.element_size()])


def assert_bit_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(bits(a), bits(b)), "values differ (bitwise)"


def nan_with_payload(dtype, payload, negative=False):
    """A scalar NaN of ``dtype`` with the given mantissa payload (and sign)."""
    exp, sign = {torch.float32: (0x7F800000, 31), torch.float64: (0x7FF0000000000000, 63),
                 torch.float16: (0x7C00, 15), torch.bfloat16: (0x7F80, 15)}[dtype]
    v = exp | payload | ((1 << sign) if negative else 0)
    if v >= 1 << sign:
        v -= 1 << (sign + 1)  # as the signed integer of the same bits
    return torch.tensor([v], dtype=_INT_VIEW[torch.empty(0, dtype=dtype).element_size()]).view(dtype)[0]


def gather_at(feats, rois, roi_levels, argmax):
    """The feature elements at ``argmax``: (K, C, B) in the features' dtype (CPU)."""
    k, c, nb = argmax.shape
    out = torch.empty(k, c, nb, dtype=feats[0].dtype)
    for r in range(k):
        f = feats[int(roi_levels[r])][int(rois[r, 0])].cpu().reshape(c, -1)
        out[r] = torch.gather(f, 1, argmax[r].long().cpu())
    return out


def channels_last(feats):
    return [f.contiguous(memory_format=torch.channels_last) for f in feats]


def to(device, *tensors):
    """The tensors (or lists of tensors) moved to ``device``."""
    return [[x.to(device) for x in t] if isinstance(t, (list, tuple)) else t.to(device) for t in tensors]


def total_loss(losses: dict) -> torch.Tensor:
    """The sum of an mmdet loss dict's "loss" entries (tensors or lists of tensors)."""
    return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in losses.items() if "loss" in k)


def random_batch(model, num_classes: int, training: bool = True, sizes=((3, 160, 192), (3, 128, 160)),
                 with_proposals=None) -> dict:
    """mmdet's ``demo_mm_inputs`` (3, 2, 3... random boxes per image) through the model's
    data preprocessor: the keyword arguments of ``model(**batch, mode=...)``. A model
    without an RPN (FastRCNN, RCNN) also gets 40 proposals per image (each ground-truth
    box jittered, and random boxes), unless ``with_proposals`` says otherwise."""
    from mmdet.testing import demo_mm_inputs

    # demo_mm_inputs draws labels with randint(1, num_classes), which fails for one class.
    packed = demo_mm_inputs(len(sizes), [list(s) for s in sizes], num_items=[3 - i % 2 for i in range(len(sizes))],
                            num_classes=max(num_classes, 2))
    for sample in packed["data_samples"]:
        sample.gt_instances.labels %= num_classes
    if with_proposals is None:
        with_proposals = not getattr(model, "with_rpn", True)
    if with_proposals:
        from mmengine.structures import InstanceData

        generator = torch.Generator().manual_seed(0)
        for sample, (_, h, w) in zip(packed["data_samples"], sizes):
            gt = sample.gt_instances.bboxes
            gt = gt.tensor if hasattr(gt, "tensor") else gt
            jitter = gt.repeat(4, 1) + torch.randn(len(gt) * 4, 4, generator=generator) * 3
            xy = torch.rand(40 - len(jitter), 2, generator=generator) * torch.tensor([w * 0.7, h * 0.7])
            wh = 8 + torch.rand(40 - len(jitter), 2, generator=generator) * torch.tensor([w * 0.3, h * 0.3])
            boxes = torch.cat([jitter, torch.cat([xy, xy + wh], 1)])
            boxes = torch.stack([boxes[:, 0].clamp(0, w - 2), boxes[:, 1].clamp(0, h - 2),
                                 boxes[:, 2].clamp(1, w), boxes[:, 3].clamp(1, h)], 1)
            boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
            sample.proposals = InstanceData(bboxes=boxes, scores=torch.zeros(len(boxes)))
    return model.data_preprocessor(packed, training)
