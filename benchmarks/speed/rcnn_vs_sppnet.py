"""Reproduce SPPNet's headline speed comparison: R-CNN vs SPP-net, per image, on this CPU.

Two ways: ``main()`` (``make bench``) times untrained networks at the paper's scale, below;
``time_trained()`` times trained detectors (mmdet_plugin's ``RCNN`` against SPP-net's
``FastRCNN`` / ``MultiScaleSPPNet``) side by side on real test images with their own
selective-search windows, for ``rcnn_vs_sppnet_table.py``.

``main()``: one synthetic VOC-like image, 500x375, with 2,000 selective-search-like proposals
(sqrt(area) log-uniform in [20, 400] px, aspect ratio log-uniform in [1/3, 3]). Every pipeline
has the same backbone, the same spatial pyramid (1x1, 2x2, 3x3, 6x6 max = 50 bins) and the same
head (fc6, fc7, 21-way classifier; ``--fc`` wide, 4096 as in the paper). All weights are random
(nothing is downloaded): speed does not depend on their values.

Backbone (``--backbone``):
  zf5        (default) the paper's ZF-5-like 5-conv net: conv1 96 7x7/2, max-pool 3/2,
             conv2 256 5x5/2, max-pool 3/2, conv3 384, conv4 384, conv5 256 (3x3/1);
             total stride 16, 256 channels at conv5. Padding keeps a 224 crop at 14x14.
  resnet18c4 mmdet's ResNet-18 (BN in eval mode) cut after stage 3 (C4): stride 16, 256 channels.

Pipelines:
  R-CNN      each proposal is cropped from the image and warped to 224x224 (mmcv RoIAlign, one
             bilinear sample per output pixel: a plain crop-and-resize, without R-CNN's 16-px
             context), the crops run through the backbone in batches of ``--batch``, each crop's
             14x14 map is pooled with the same pyramid (so that fc6 is as wide as SPP-net's), then
             the head. 2,000 crops would take minutes here, so warp, conv and crop pooling are
             timed on ``--crops`` proposals and extrapolated LINEARLY to 2,000. The fc stage is the
             same (2000, 12800) computation as SPP-net's, so the SAME measured fc time is used for
             both (smaller batches, as a real R-CNN might run, are no faster on a CPU).
  R-CNN AlexNet  (context for the paper's "24x-64x vs AlexNet R-CNN") the same with an
             AlexNet-like conv net on 227x227 crops, pool5 3x3/2 -> 6x6x256 = 9216-d, and a
             9216-4096-4096-21 head (timed at 2,000 rows).
  SPP-net    1-scale: the image resized to shorter side 688 (917x688), the backbone once,
             ``spp_roi_pool`` (max, "sppnet" projection) of all 2,000 proposals, then the head.
             5-scale: shorter sides {480, 576, 688, 864, 1200}, the backbone once per scale, each
             proposal pooled at the scale where its scaled area is closest to 224x224 (one
             ``spp_roi_pool`` call over the five maps, ``roi_levels`` = its scale).
  SPP-Align  the 1-scale pipeline with ``sampling="bilinear"`` (sampling_ratio 2): the pyramid
             on a 12 x 12 bilinear lattice per proposal.

Each stage is timed on its own (``common.median_time``) under torch.inference_mode, float32;
ratios between pipelines are what matter. The paper's numbers are on one GPU (ZF-5, R-CNN
conv 14.37 s/image). Its R-CNN total is taken as 14.46 s (= 102 x 0.142 s, the only figure
that makes both its quoted speed-ups consistent). "conv" = backbone only; "head" = SPP
pooling + fc layers (the paper's fc column); R-CNN "warp" = crop-and-resize, counted in the
overall time only. Writes benchmarks/results/rcnn_vs_sppnet.csv, .png and .md.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import torch
import torch.nn as nn

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, which adds speed/ and accuracy/

import common
from common import median_time
from spp_triton import spp_roi_pool

PYRAMID = (1, 2, 3, 6)
STRIDE = 16
NUM_PROPOSALS = 2000
ORIG_W, ORIG_H = 500, 375  # a typical PASCAL VOC image
SCALES_5 = (480, 576, 688, 864, 1200)
SCALE_1 = 688
NUM_CLASSES = 21

# Paper (TPAMI 2015, Table "speed", one GPU, ZF-5 for both).
PAPER = {
    "rcnn": dict(conv=14.37, head=None, total=14.46),
    "spp_1scale": dict(conv=0.053, head=0.089, total=0.142, speedup=102, speedup_conv=270),
    "spp_5scale": dict(conv=0.293, head=0.089, total=0.382, speedup=38, speedup_conv=49),
}


# --------------------------------------------------------------------------- networks
def zf5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, 2, 3), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(96, 256, 5, 2, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True))


class ResNet18C4(nn.Module):
    def __init__(self):
        super().__init__()
        from mmdet.models.backbones import ResNet

        self.body = ResNet(depth=18, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                           out_indices=(2,), frozen_stages=-1, norm_eval=True, init_cfg=None)

    def forward(self, x):
        return self.body(x)[0]


def alexnet_conv() -> nn.Module:
    """AlexNet-like conv1-conv5 + pool5 (227 input -> 6x6x256)."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, 4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, 1, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))


def fc_head(in_features: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, width), nn.ReLU(inplace=True),
                         nn.Linear(width, width), nn.ReLU(inplace=True),
                         nn.Linear(width, NUM_CLASSES))


# --------------------------------------------------------------------------- inputs
def make_proposals(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 4) boxes x1, y1, x2, y2 in the 500x375 original image."""
    g = torch.Generator().manual_seed(seed)
    side = torch.exp(torch.empty(n).uniform_(math.log(20), math.log(400), generator=g))
    ratio = torch.exp(torch.empty(n).uniform_(math.log(1 / 3), math.log(3), generator=g))
    bw, bh = side * ratio.sqrt(), side / ratio.sqrt()
    cx, cy = torch.rand(n, generator=g) * ORIG_W, torch.rand(n, generator=g) * ORIG_H
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, ORIG_W - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, ORIG_H - 1)
    # keep every box at least 4 px wide/high after clamping
    boxes[:, 2] = torch.maximum(boxes[:, 2], (boxes[:, 0] + 4).clamp(max=ORIG_W - 1))
    boxes[:, 3] = torch.maximum(boxes[:, 3], (boxes[:, 1] + 4).clamp(max=ORIG_H - 1))
    boxes[:, 0] = torch.minimum(boxes[:, 0], boxes[:, 2] - 4)
    boxes[:, 1] = torch.minimum(boxes[:, 1], boxes[:, 3] - 4)
    return boxes


def scaled_size(short: int):
    f = short / min(ORIG_W, ORIG_H)
    return f, round(ORIG_H * f), round(ORIG_W * f)  # factor, H, W


# --------------------------------------------------------------------------- pipelines
def time_rcnn(backbone, img, boxes, crop_size, pool_fn, reps, batch):
    """Warp, conv and crop-pooling times for len(boxes) crops (processed in batches)."""
    from mmcv.ops import roi_align

    n = boxes.shape[0]
    rois = torch.cat([torch.zeros(n, 1), boxes], 1)
    chunks = [rois[i:i + batch] for i in range(0, n, batch)]

    def warp():
        # one bilinear sample per output pixel: a plain crop-and-resize, like R-CNN's warp
        return [roi_align(img, r, (crop_size, crop_size), 1.0, 1, "avg", True) for r in chunks]

    crops = warp()
    maps = [backbone(c) for c in crops]
    t_warp = median_time(warp, reps)
    t_conv = median_time(lambda: [backbone(c) for c in crops], reps)
    t_pool = median_time(lambda: [pool_fn(m) for m in maps], reps)
    return t_warp, t_conv, t_pool, pool_fn(maps[0]).shape[1]


def whole_map_spp(m: torch.Tensor) -> torch.Tensor:
    """Pool each crop's whole final map with the pyramid -> (B, C * 50)."""
    b, _, h, w = m.shape
    s = 1.0 / STRIDE
    rois = torch.tensor([[i, 0.0, 0.0, w / s - 1, h / s - 1] for i in range(b)])
    # "round" projection covers the whole map (the "sppnet" one drops the last cell of a
    # window that ends at the image border); the cost is the same.
    return spp_roi_pool(m, rois, spatial_scales=s, pyramid=PYRAMID, projection="round").flatten(1)


def time_spp(backbone, scales, boxes, reps, sampling="cells"):
    """SPP-net: conv (once per scale) and spp_roi_pool times; returns (conv, pool, proposals per
    scale, map shapes). ``sampling="bilinear"``: SPP-Align (sampling_ratio 2, aligned) instead of
    the paper's cells."""
    g = torch.Generator().manual_seed(1)
    sizes = [scaled_size(s) for s in scales]
    imgs = [torch.randn(1, 3, h, w, generator=g) for _, h, w in sizes]
    fac = torch.tensor([f for f, _, _ in sizes])
    # each proposal's scale: the one where its scaled area is closest to 224 x 224 (one scale: 0)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None] * fac[None] ** 2
    levels = (area - 224.0 ** 2).abs().argmin(1)
    # proposals in each chosen scale's pixel coordinates; stride 16 on every scale
    rois = torch.cat([torch.zeros(boxes.shape[0], 1), boxes * fac[levels][:, None]], 1)

    maps = [backbone(x) for x in imgs]
    t_conv = median_time(lambda: [backbone(x) for x in imgs], reps)
    geometry = dict(projection="sppnet") if sampling == "cells" else dict(sampling=sampling, sampling_ratio=2)

    def pool():
        return spp_roi_pool(maps, rois, spatial_scales=[1.0 / STRIDE] * len(maps), pyramid=PYRAMID,
                            roi_levels=levels if len(maps) > 1 else None, mode="max", backend="torch",
                            **geometry).flatten(1)

    t_pool = median_time(pool, reps)
    counts = torch.bincount(levels, minlength=len(scales)).tolist()
    shapes = [tuple(m.shape[-2:]) for m in maps]
    return t_conv, t_pool, counts, shapes


# --------------------------------------------------------------------------- trained models
def time_trained(run_dirs: dict, images: int = 3, rounds: int = 5) -> dict:
    """Per-image conv and head time of trained detectors, side by side in this process.

    Args:
        run_dirs: {key: a ``mim train`` work dir} (its config and ``last_checkpoint``); the
            models read their config's test split with its proposal file.
        images: test images timed (the split's first ones), one at a time (batch 1: the
            RCNN timing below relies on it), each through its model's own test pipeline.
        rounds: interleaved rounds (model after model on the same image), after one warm-up.

    Returns:
        {key: dict(conv_s, head_s, total_s, proposals)}, medians over rounds of the sum over
        the images, divided by ``images``. conv: ``extract_feat`` (SPP-net: the backbone at
        every scale) or, for ``RCNN``, its extractor on all windows (crop, warp and the
        backbone per window, in its chunks). head: the rest of ``StandardRoIHead.predict``
        on those features: pyramid pooling (SPP-net: of each window on the shared map;
        R-CNN: of each crop's whole map), fc layers, box decoding and NMS. 1 thread,
        float32, no grad.
    """
    import copy
    import time

    import profile_detector
    from mmdet.registry import DATASETS, MODELS
    from mmdet.structures.bbox import bbox2roi
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint

    profile_detector.mmdet_scope()
    models, batches = {}, {}
    for key, run_dir in run_dirs.items():
        cfg = Config.fromfile(str(next(Path(run_dir).glob("*.py"))))
        cfg.model.backbone.pretrained = False  # the checkpoint has every weight
        model = MODELS.build(copy.deepcopy(cfg.model))
        load_checkpoint(model, (Path(run_dir) / "last_checkpoint").read_text().strip(), map_location="cpu",
                        logger="silent")
        models[key] = model.eval()
        # Each model's own test pipeline: a 2x row sees its images at twice the size.
        dataset = copy.deepcopy(cfg.test_dataloader.dataset)
        dataset.data_root = str(common.ROOT / dataset.data_root) + "/"
        ds = DATASETS.build(dataset)
        batches[key] = [pseudo_collate([ds[i]]) for i in range(min(images, len(ds)))]
    counts = [len(b["data_samples"][0].proposals) for b in next(iter(batches.values()))]

    def per_image(key):
        """One round of ``key``'s model over its images: {conv, total} seconds per image."""
        model, conv_s, total_s = models[key], 0.0, 0.0
        for batch in batches[key]:
            data = model.data_preprocessor(batch, False)
            inputs, samples = data["inputs"], data["data_samples"]
            t0 = time.perf_counter()
            feats = model.extract_feat(inputs)
            if type(model).__name__ == "RCNN":
                # StandardRoIHead.predict_bbox with the crops' maps split off as "conv".
                head = model.roi_head
                rois = bbox2roi([s.proposals.bboxes for s in samples])
                crop_maps = head.bbox_roi_extractor(feats, rois)
                t1 = time.perf_counter()
                cls_score, bbox_pred = head.bbox_head(crop_maps)
                head.bbox_head.predict_by_feat(rois=(rois, ), cls_scores=(cls_score, ), bbox_preds=(bbox_pred, ),
                                               batch_img_metas=[s.metainfo for s in samples],
                                               rcnn_test_cfg=head.test_cfg, rescale=True)
            else:
                t1 = time.perf_counter()
                model.roi_head.predict(feats, [s.proposals for s in samples], samples)
            t2 = time.perf_counter()
            conv_s += t1 - t0
            total_s += t2 - t0
        return dict(conv=conv_s / len(batches[key]), total=total_s / len(batches[key]))

    with torch.no_grad():
        med = common.interleaved({key: lambda key=key: per_image(key) for key in models}, rounds, parts=True)
    return {key: dict(conv_s=t["conv"], head_s=t["total"] - t["conv"], total_s=t["total"],
                      proposals=statistics.mean(counts)) for key, t in med.items()}


# --------------------------------------------------------------------------- main
def main():
    p = common.parser(__doc__)  # --quick: 8 crops, 1 rep, 1 scale + 2 scales, fc 1024
    p.add_argument("--backbone", choices=("zf5", "resnet18c4"), default="zf5")
    p.add_argument("--crops", type=int, default=64, help="R-CNN subsample (extrapolated to 2000)")
    p.add_argument("--batch", type=int, default=16, help="R-CNN crops per backbone batch")
    p.add_argument("--fc", type=int, default=4096, help="fc6/fc7 width (paper: 4096)")
    p.add_argument("--no-alexnet", action="store_true", help="skip the AlexNet R-CNN context row")
    a = p.parse_args()
    common.setup_threads(a.threads)
    scales5 = SCALES_5
    if a.quick:
        a.crops, a.batch, a.reps, a.fc = 8, 8, 1, 1024
        scales5 = (480, 688)
    torch.manual_seed(0)
    machine = common.machine() + " at start"
    print(f"backbone: {a.backbone} (stride 16, 256 ch, random init); head fc6/fc7 width {a.fc}; "
          f"pyramid {PYRAMID} max; {NUM_PROPOSALS} proposals/image; {machine}")
    print(f"timings: median of {a.reps} after 1 warm-up; R-CNN warp/conv/crop-pool timed on {a.crops} "
          f"crops (batches of {a.batch}) and extrapolated linearly x{NUM_PROPOSALS / a.crops:.1f}")

    backbone = (zf5() if a.backbone == "zf5" else ResNet18C4()).eval()
    boxes = make_proposals(NUM_PROPOSALS)
    g = torch.Generator().manual_seed(2)
    orig = torch.randn(1, 3, ORIG_H, ORIG_W, generator=g)
    bins = sum(n * n for n in PYRAMID)
    head = fc_head(256 * bins, a.fc).eval()
    feats = torch.randn(NUM_PROPOSALS, 256 * bins, generator=g)
    ext = NUM_PROPOSALS / a.crops
    sub = boxes[torch.randperm(NUM_PROPOSALS, generator=g)[:a.crops]]
    rows = []

    def row(pipeline, key, warp_s, conv_s, pool_s, fc_s, scales="-", measured_on=f"{a.crops} crops x{ext:.1f}"):
        rows.append(dict(pipeline=pipeline, key=key, scales=scales, proposals=NUM_PROPOSALS, measured_on=measured_on,
                         warp_s=warp_s, conv_s=conv_s, pool_s=pool_s, fc_s=fc_s, head_s=pool_s + fc_s,
                         total_s=warp_s + conv_s + pool_s + fc_s))

    with torch.inference_mode():
        t_fc = median_time(lambda: head(feats), a.reps)
        print(f"  fc6-fc7-fc8 on {NUM_PROPOSALS} x {256 * bins}: {t_fc:.3f} s", flush=True)

        w, c, pl, dim = time_rcnn(backbone, orig, sub, 224, whole_map_spp, a.reps, a.batch)
        assert dim == 256 * bins
        print(f"  R-CNN {a.crops} crops: warp {w:.3f} s, conv {c:.3f} s, crop pool {pl:.4f} s", flush=True)
        row(f"R-CNN ({a.backbone})", "rcnn", w * ext, c * ext, pl * ext, t_fc)

        if not a.no_alexnet:
            anet, ahead = alexnet_conv().eval(), fc_head(9216, a.fc).eval()
            afeats = torch.randn(NUM_PROPOSALS, 9216, generator=g)
            t_afc = median_time(lambda: ahead(afeats), a.reps)
            w, c, pl, dim = time_rcnn(anet, orig, sub, 227, lambda m: m.flatten(1), a.reps, a.batch)
            assert dim == 9216
            print(f"  R-CNN AlexNet {a.crops} crops: warp {w:.3f} s, conv {c:.3f} s; fc {t_afc:.3f} s",
                  flush=True)
            row("R-CNN (AlexNet, pool5 6x6)", "rcnn_alexnet", w * ext, c * ext, 0.0, t_afc)

        for key, scales, sampling in (("spp_1scale", (SCALE_1,), "cells"), ("spp_5scale", scales5, "cells"),
                                      ("align_1scale", (SCALE_1,), "bilinear")):
            c, pl, counts, shapes = time_spp(backbone, scales, boxes, a.reps, sampling)
            name = f"SPP-net ({a.backbone}) {len(scales)}-scale" + (", SPP-Align r = 2" if sampling != "cells" else "")
            print(f"  {name} {scales}: conv {c:.3f} s, pool {pl:.3f} s; maps {shapes}; proposals per scale {counts}",
                  flush=True)
            row(name, key, 0.0, c, pl, t_fc, "/".join(map(str, scales)), "all")

    rc = rows[0]
    alex = next((r for r in rows if r["key"] == "rcnn_alexnet"), None)
    for r in rows:
        # the paper's 5-scale row only where the 5 scales are the paper's (not in --quick)
        paper = PAPER.get(r["key"], {}) if r["key"] != "spp_5scale" or tuple(scales5) == SCALES_5 else {}
        if r["key"] == "rcnn":
            paper = dict(speedup=1, speedup_conv=1, **paper)
        r.update(speedup_overall=rc["total_s"] / r["total_s"], speedup_conv=rc["conv_s"] / r["conv_s"],
                 speedup_vs_alexnet_rcnn=alex["total_s"] / r["total_s"] if alex else float("nan"),
                 paper_conv_s=paper.get("conv", ""), paper_head_s=paper.get("head", ""),
                 paper_total_s=paper.get("total", ""), paper_speedup_overall=paper.get("speedup", ""),
                 paper_speedup_conv=paper.get("speedup_conv", ""),
                 paper_speedup_vs_alexnet_rcnn="24-64" if r["key"].startswith("spp") else "",
                 backbone=a.backbone, fc_width=a.fc, machine=machine)

    stem = common.result("rcnn_vs_sppnet", a)
    fields = ["pipeline", "backbone", "fc_width", "scales", "proposals", "measured_on", "warp_s", "conv_s",
              "pool_s", "fc_s", "head_s", "total_s", "speedup_overall", "speedup_conv",
              "speedup_vs_alexnet_rcnn", "paper_conv_s", "paper_head_s", "paper_total_s",
              "paper_speedup_overall", "paper_speedup_conv", "paper_speedup_vs_alexnet_rcnn", "machine"]
    common.write_csv(stem.with_suffix(".csv"), rows, fields)

    def fmt(x):
        return "-" if x in ("", None) else (f"{x:.3f}" if isinstance(x, float) else str(x))

    def paper(x, unit=""):
        return "" if x in ("", None) else f" (paper {fmt(x)}{unit})"

    table = common.markdown_table(
        ["pipeline", "warp s", "conv s", "head s = SPP pool + fc", "total s", "speed-up overall", "speed-up conv",
         "speed-up vs AlexNet R-CNN"],
        [[r["pipeline"], fmt(r["warp_s"]), fmt(r["conv_s"]) + paper(r["paper_conv_s"]),
          f"{fmt(r['head_s'])} = {fmt(r['pool_s'])} + {fmt(r['fc_s'])}{paper(r['paper_head_s'])}",
          fmt(r["total_s"]) + paper(r["paper_total_s"]),
          f"{r['speedup_overall']:.1f}x{paper(r['paper_speedup_overall'], 'x')}",
          f"{r['speedup_conv']:.1f}x{paper(r['paper_speedup_conv'], 'x')}",
          f"{r['speedup_vs_alexnet_rcnn']:.1f}x (paper {r['paper_speedup_vs_alexnet_rcnn']}x)"
          if r["key"].startswith("spp") and alex else "-"] for r in rows])
    spp1 = next(r for r in rows if r["key"] == "spp_1scale")
    split = {part: f"{100 * spp1[part + '_s'] / spp1['total_s']:.0f} %" for part in ("conv", "pool", "fc")}
    common.write_text(stem.with_suffix(".md"), "\n".join([
        f"Per-image inference time, {NUM_PROPOSALS} proposals, backbone {a.backbone}, head fc {a.fc}, "
        f"pyramid 1/2/3/6 max. Medians of {a.reps} runs ({common.machine()} at the end); "
        f"R-CNN rows extrapolated linearly from {a.crops} crops; paper = one GPU, ZF-5.", "", table, "",
        f"SPP-net 1-scale time split: conv {split['conv']}, SPP pooling {split['pool']}, fc {split['fc']} "
        "(paper, GPU: conv 37 %, fc 63 %).",
        f"Both pipelines run the same fc layers on {NUM_PROPOSALS} rows, so no SPP-net variant can beat "
        f"R-CNN by more than R-CNN total / fc time = {rc['total_s'] / rc['fc_s']:.0f}x overall with this "
        f"head on this CPU (the paper's GPU: 14.46 / 0.089 = 162x)."]))
    plot(rows, stem.with_suffix(".png"), a)
    print(f"\nwrote {stem}.csv, {stem}.md and {stem}.png")


def plot(rows, path: Path, a):
    fig, (ax1, ax2) = common.figure(1, 2, figsize=(12, 4.5))
    parts = (("warp_s", "tab:gray"), ("conv_s", "tab:blue"), ("pool_s", "tab:orange"), ("fc_s", "tab:green"),
             ("total_s", "black"))
    for j, (part, colour) in enumerate(parts):
        vals = [r[part] if r[part] > 0 else float("nan") for r in rows]
        ax1.bar([i + (j - 2) * 0.16 for i in range(len(rows))], vals, 0.16, label=part[:-2], color=colour)
    ax1.set_xticks(range(len(rows)), [r["pipeline"].replace(" (", "\n(") for r in rows])
    ax1.set(yscale="log", ylabel="seconds per image (log)")
    ax1.set_title(f"Per-image time, {NUM_PROPOSALS} proposals (R-CNN extrapolated from {a.crops})", fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(True, axis="y", which="both", alpha=0.3)
    ax1.tick_params(axis="x", labelsize=7)
    spp = [r for r in rows if r["key"].startswith("spp")]
    series = (("speedup_overall", "measured overall"), ("paper_speedup_overall", "paper overall"),
              ("speedup_conv", "measured conv"), ("paper_speedup_conv", "paper conv"))
    for j, (key, label) in enumerate(series):
        vals = [float(r[key]) if r[key] != "" else float("nan") for r in spp]
        bars = ax2.bar([i + (j - 1.5) * 0.2 for i in range(len(spp))], vals, 0.2, label=label)
        ax2.bar_label(bars, [f"{v:.0f}x" if v == v else "" for v in vals], fontsize=7)
    ax2.set_xticks(range(len(spp)), [r["pipeline"] for r in spp], fontsize=8)
    ax2.set(yscale="log", ylabel="speed-up vs R-CNN (same backbone)",
            title="Speed-up: measured (shared 2-core CPU) vs paper (GPU)")
    ax2.legend(fontsize=8)
    common.save_figure(fig, path)


if __name__ == "__main__":
    main()
