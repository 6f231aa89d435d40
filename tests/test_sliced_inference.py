"""Sliced inference on large images (``imagery.windows``, ``imagery.merge`` and
``mmdet_plugin.apis.SlicedInferencer``): the merge rules against a plain greedy reference
and mmcv's NMS, merging across seams only, the window grid, and no box lost or duplicated
at seams. Reading images is tests/test_imagery.py's.

The seam test runs the real test pipeline, batching, offsets and merge with an exact
detector: connected components of the non-black pixels of each window (scipy), scoring
boxes that touch the window's edge lower, as a CNN scores half-seen objects. Any box lost
or duplicated there is then the slicing's fault, not the detector's."""

import numpy as np
import pytest
import torch

from imagery.merge import overlapping_pairs
from imagery.read import ArrayImage
from imagery.windows import GridError, axis_windows, choose_slicing
from mmdet_plugin.apis import SlicedInferencer, SliceSettings, merge_detections, window_grid


def random_boxes(n, seed, extent=500.0, max_side=60.0, labels=2):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * extent
    wh = 1 + torch.rand(n, 2, generator=g) * max_side
    scores = torch.rand(n, generator=g)
    return (torch.cat([xy, xy + wh], 1).numpy(), scores.numpy(),
            torch.randint(0, labels, (n,), generator=g).numpy())


def reference_merge(bboxes, scores, labels, rule, thr):
    """Greedy merge written plainly: every pair compared, one box at a time."""
    order = sorted(range(len(bboxes)), key=lambda k: -scores[k])
    out, done = [], set()
    for a in order:
        if a in done:
            continue
        done.add(a)
        box = list(bboxes[a])
        for b in order:
            if b in done or labels[b] != labels[a]:
                continue
            ix = max(0.0, min(bboxes[a][2], bboxes[b][2]) - max(bboxes[a][0], bboxes[b][0]))
            iy = max(0.0, min(bboxes[a][3], bboxes[b][3]) - max(bboxes[a][1], bboxes[b][1]))
            inter = float(ix) * float(iy)
            area = [float(bboxes[k][2] - bboxes[k][0]) * float(bboxes[k][3] - bboxes[k][1]) for k in (a, b)]
            overlap = inter / (area[0] + area[1] - inter) if rule == "nms" else inter / min(area)
            if inter > 0 and overlap > thr:
                done.add(b)
                if rule == "join":
                    box = [min(box[0], bboxes[b][0]), min(box[1], bboxes[b][1]),
                           max(box[2], bboxes[b][2]), max(box[3], bboxes[b][3])]
        out.append((box, scores[a], labels[a]))
    return out


@pytest.mark.parametrize("rule", ["nms", "ios", "join"])
@pytest.mark.parametrize("thr", [0.3, 0.6])
def test_merge_equals_a_plain_greedy_reference(rule, thr):
    bboxes, scores, labels = random_boxes(300, seed=7)
    got = merge_detections(bboxes, scores, labels, rule, thr)
    want = reference_merge(bboxes, scores, labels, rule, thr)
    assert len(got[0]) == len(want)
    np.testing.assert_allclose(got[0], np.array([w[0] for w in want]), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got[2], [w[2] for w in want])


def test_the_nms_rule_keeps_what_mmcv_batched_nms_keeps():
    from mmcv.ops import batched_nms

    bboxes, scores, labels = random_boxes(2000, seed=3, extent=1500.0, labels=3)
    _, keep = batched_nms(torch.from_numpy(bboxes), torch.from_numpy(scores), torch.from_numpy(labels),
                          dict(type="nms", iou_threshold=0.5))
    got = merge_detections(bboxes, scores, labels, "nms", 0.5)
    assert sorted(got[1].tolist()) == sorted(scores[keep.numpy()].tolist())


def test_overlapping_pairs_finds_every_intersecting_pair():
    bboxes, _, _ = random_boxes(400, seed=11, extent=300.0, max_side=120.0)
    bboxes[0] = [-50.0, -20.0, 400.0, 30.0]  # one wide box across many cells
    i, j, inter = overlapping_pairs(bboxes)
    got = set(zip(i.tolist(), j.tolist()))
    want = set()
    for a in range(len(bboxes)):
        for b in range(a + 1, len(bboxes)):
            w = min(bboxes[a][2], bboxes[b][2]) - max(bboxes[a][0], bboxes[b][0])
            h = min(bboxes[a][3], bboxes[b][3]) - max(bboxes[a][1], bboxes[b][1])
            if w > 0 and h > 0:
                want.add((a, b))
    assert got == want and len(inter) == len(want)


def test_merge_refuses_unknown_rules_and_thresholds():
    bboxes, scores, labels = random_boxes(3, seed=0)
    with pytest.raises(ValueError, match="merge rule"):
        merge_detections(bboxes, scores, labels, "wbf")
    with pytest.raises(ValueError, match="threshold"):
        merge_detections(bboxes, scores, labels, "nms", 1.5)


def test_merging_across_seams_keeps_what_one_window_decided():
    """A small box inside a big box of the same label, both from one window, stays: the
    detector's NMS decided there. The same pair from two windows is a seam's duplicate."""
    bboxes = np.array([[0, 0, 100, 100], [40, 40, 60, 60]], np.float32)
    scores, labels = np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64)
    same = merge_detections(bboxes, scores, labels, "ios", 0.5, windows=np.array([3, 3]))
    assert len(same[0]) == 2
    two = merge_detections(bboxes, scores, labels, "ios", 0.5, windows=np.array([3, 4]))
    np.testing.assert_array_equal(two[0], bboxes[:1])
    assert len(merge_detections(bboxes, scores, labels, "ios", 0.5)[0]) == 1  # no windows: every pair
    with pytest.raises(ValueError, match="one window per box"):
        merge_detections(bboxes, scores, labels, "ios", 0.5, windows=np.array([1]))


@pytest.mark.parametrize("length,tile,overlap", [(1249, 600, 50), (1035, 600, 50), (601, 600, 50), (650, 600, 50),
                                                 (651, 600, 50), (10000, 600, 50), (1249, 400, 0), (400, 400, 0),
                                                 (399, 400, 100), (2000, 256, 255)])
def test_windows_are_the_fewest_that_share_the_overlap_and_never_near_copies(length, tile, overlap):
    """Along an axis: windows inside it, covering it, none larger than ``tile``, all of one
    size, neighbours sharing at least ``overlap`` px and no more than needed (one pixel of
    rounding): no fewer windows could share ``overlap``."""
    windows = axis_windows(length, tile, overlap)
    starts, sizes = zip(*windows)
    assert len(set(sizes)) == 1 and sizes[0] <= tile
    assert starts[0] == 0 and starts[-1] + sizes[-1] == length
    shared = [a + sizes[0] - b for a, b in zip(starts, starts[1:])]
    assert all(overlap <= s <= overlap + 2 for s in shared), shared
    # n - 1 windows of the full tile, sharing exactly ``overlap``, would fall short of the edge
    assert len(windows) == 1 if length <= tile else (len(windows) - 1) * (tile - overlap) + overlap < length
    # tile_voc's fixed tiles: full-sized, the last one ending at the edge.
    fixed = axis_windows(length, tile, overlap, fixed=True)
    assert all(size == min(tile, length) for _, size in fixed) and fixed[-1][0] + fixed[-1][1] == length


def test_a_601_px_photo_is_two_windows_that_share_the_overlap_not_two_near_copies():
    assert window_grid(601, 600, 600, 50) == [(0, 0, 326, 600), (275, 0, 326, 600)]
    assert window_grid(600, 600, 600, 50) == [(0, 0, 600, 600)]


def test_an_absurd_grid_is_refused_with_its_numbers():
    with pytest.raises(GridError, match=r"10000 x 10000 px into [\d,]+ windows"):
        window_grid(10000, 10000, 600, 599)


def test_slice_settings_refuse_an_overlap_as_large_as_the_tile():
    with pytest.raises(ValueError, match="overlap must be in"):
        SliceSettings(tile=256, overlap=256)
    with pytest.raises(ValueError, match="tile must be"):
        SliceSettings(tile=0)


def test_the_command_line_chooses_over_the_models_windows():
    """``choose_slicing`` (tools/infer.py and the ONNX runtime): options override the stored
    windows one by one; ``--tile`` alone on a model without windows gets an eighth of it as
    overlap; without a tile from either, images run whole; an option that needs a tile, or
    that ``--no-slicing`` contradicts, is named."""
    stored = SliceSettings(600, 50, "nms", 0.5)
    assert choose_slicing(stored) == stored
    assert choose_slicing(stored, merge="join") == SliceSettings(600, 50, "join", 0.5)
    assert choose_slicing(stored, tile=400, overlap=0) == SliceSettings(400, 0, "nms", 0.5)
    assert choose_slicing(stored, tile=800) == SliceSettings(800, 50, "nms", 0.5)
    assert choose_slicing(stored, no_slicing=True) is None
    with pytest.raises(ValueError, match="--no-slicing runs every image whole: it takes no --tile"):
        choose_slicing(stored, tile=400, no_slicing=True)
    assert choose_slicing(None) is None
    assert choose_slicing(None, tile=256) == SliceSettings(256, 32)
    with pytest.raises(ValueError, match="--overlap, --merge-thr need --tile"):
        choose_slicing(None, overlap=16, merge_thr=0.3)
    with pytest.raises(ValueError, match=r"--overlap must be in \[0, tile\) = \[0, 600\)"):
        choose_slicing(stored, overlap=600)


# --- No box lost or duplicated at seams ---------------------------------------------------

class ComponentDetector:
    """Boxes of the connected non-black regions of each input: an exact detector that, like
    a CNN, sees only its window and scores objects cut by the window's edge lower."""

    def test_step(self, data):
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData
        from scipy import ndimage

        out = []
        for img, sample in zip(data["inputs"], data["data_samples"]):
            mask = img.numpy().max(0) > 0
            boxes, scores = [], []
            for sl in ndimage.find_objects(ndimage.label(mask)[0]):
                y, x = sl
                boxes.append([x.start, y.start, x.stop, y.stop])
                cut = x.start == 0 or y.start == 0 or x.stop == mask.shape[1] or y.stop == mask.shape[0]
                scores.append(0.6 if cut else 0.9)
            scale = torch.tensor(sample.metainfo["scale_factor"]).repeat(2)  # back to the input's pixels, as mmdet
            pred = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) / scale,
                                scores=torch.tensor(scores), labels=torch.zeros(len(boxes), dtype=torch.long))
            result = DetDataSample(metainfo=sample.metainfo)
            result.pred_instances = pred
            out.append(result)
        return out


def seam_picture(width, height, tile, overlap, side):
    """Squares of ``side`` px on black: astride every seam of the window grid (jittered by
    up to 5 px) and centred on every overlap zone, each crossing the seams of one axis only
    (a corner piece a few pixels wide is a different problem). Returns (image, boxes)."""
    rng = np.random.default_rng(0)
    windows = window_grid(width, height, tile, overlap)
    spans = [sorted({(w[0], w[2]) for w in windows}), sorted({(w[1], w[3]) for w in windows})]
    edges = [sorted({a + n for a, n in sp[:-1]} | {a for a, _ in sp[1:]}) for sp in spans]
    zones = [[(b + a + n) / 2 for (a, n), (b, _) in zip(sp, sp[1:])] for sp in spans]

    def spaced(length, axis):  # positions along ``axis`` whose squares cross none of its seams
        out = []
        for p in range(10, length - side - 10):
            if not any(p < e < p + side for e in edges[axis]) and (not out or p >= out[-1] + side + 30):
                out.append(p)
        return out

    squares = []
    for axis in (0, 1):
        across = [round(c - side / 2) + int(rng.integers(-5, 6)) for c in edges[axis]]
        across += [round(c - side / 2) for c in zones[axis]]
        for a in across:
            for b in spaced(height if axis == 0 else width, 1 - axis):
                squares.append([a, b] if axis == 0 else [b, a])
    img = np.zeros((height, width, 3), np.uint8)
    kept = []
    for x, y in squares:
        box = [x, y, x + side, y + side]
        if min(box) < 0 or box[2] > width or box[3] > height or any(
                min(box[2], k[2]) > max(box[0], k[0]) - 3 and min(box[3], k[3]) > max(box[1], k[1]) - 3 for k in kept):
            continue  # squares never touch, so each is one component
        kept.append(box)
        img[y:y + side, x:x + side] = (200, 120, 60)
    return img, np.array(kept, np.float32)


@pytest.fixture(scope="module")
def pipeline_cfg():
    from mmengine.config import Config

    return Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type="LoadImageFromFile"), dict(type="Resize", scale=(256, 256), keep_ratio=True),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"))]))))


@pytest.mark.parametrize("rule,side", [("ios", 40), ("join", 40), ("join", 90), ("nms", 40)])
def test_objects_astride_seams_come_out_once_and_whole(pipeline_cfg, rule, side):
    """Squares smaller than the overlap are seen whole in some window: 'ios' and 'join'
    keep the whole box and drop every cut piece. Squares larger than the overlap are cut in
    every window: only 'join' puts the pieces back together. 'nms' (IoU) loses nothing
    either, but keeps the thin slivers a window edge cuts off (IoU below the threshold)."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    tile, overlap = 256, 64
    img, truth = seam_picture(900, 700, tile, overlap, side)
    inferencer = SlicedInferencer(ComponentDetector(), pipeline_cfg, SliceSettings(tile, overlap, rule, 0.3), 3)
    pred = inferencer(ArrayImage(img))
    assert pred["windows"] == len(window_grid(900, 700, tile, overlap)) == 20  # x: 5 of 232 px; y: 4 of 223 px
    got = pred["bboxes"]
    for box in truth:  # each object found exactly, by exactly one box
        assert (np.abs(got - box).max(1) < 1e-3).sum() == 1, box
    extra = [b for b in got if not (np.abs(truth - b).max(1) < 1e-3).any()]
    if rule != "nms":
        assert extra == [], extra
    else:  # slivers: inside an object, cut off by a window edge, under 0.3 of it
        edges = {x for w in window_grid(900, 700, tile, overlap) for x in (w[0], w[0] + w[2])}
        for b in extra:
            inside = [t for t in truth if t[0] <= b[0] and t[1] <= b[1] and b[2] <= t[2] and b[3] <= t[3]]
            assert len(inside) == 1 and (b[0] in edges or b[2] in edges), b
            assert (b[2] - b[0]) * (b[3] - b[1]) < 0.3 * side * side, b


def test_a_small_image_is_one_window_at_its_own_resolution(pipeline_cfg):
    """With windows, an image no larger than one runs unresized as one window (the
    detector sees it at the tiles' resolution); without, it runs whole through the config's
    Resize as mmdet's DetInferencer runs it (here 100 -> 256 px); either way its boxes come
    back in its own pixels."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    img = np.zeros((100, 100, 3), np.uint8)
    img[10:30, 40:70] = 255
    native = SlicedInferencer(ComponentDetector(), pipeline_cfg, SliceSettings(256, 64))(ArrayImage(img))
    assert native["windows"] == 1
    np.testing.assert_array_equal(native["bboxes"], [[40, 10, 70, 30]])  # exact: no resampling
    whole = SlicedInferencer(ComponentDetector(), pipeline_cfg, None)(ArrayImage(img))
    assert whole["windows"] == 1
    np.testing.assert_allclose(whole["bboxes"], [[40, 10, 70, 30]], atol=1.5)  # ComponentDetector saw 256 px
