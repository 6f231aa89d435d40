"""Sliced inference on large images (``mmdet_plugin.apis``): the merge rules against a plain
greedy reference and mmcv's NMS, the window grid, no box lost or duplicated at seams, and
image reading (truncated, empty, GeoTIFF windows and the GeoJSON round trip).

The seam test runs the real test pipeline, batching, offsets and merge with an exact
detector: connected components of the non-black pixels of each window (scipy), scoring
boxes that touch the window's edge lower, as a CNN scores half-seen objects. Any box lost
or duplicated there is then the slicing's fault, not the detector's."""
import json

import numpy as np
import pytest
import torch

from mmdet_plugin.apis import SlicedInferencer, SliceSettings, merge_detections, window_grid
from sppnet_runtime.merge_detections import overlapping_pairs
from mmdet_plugin.apis.outputs import geojson, prediction_record
from mmdet_plugin.datasets.large_image import ImageReadError, open_large_image


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


@pytest.mark.parametrize("width,height,tile,overlap", [(1249, 1035, 400, 0), (1249, 1035, 400, 100),
                                                       (1000, 300, 400, 50), (400, 400, 400, 0)])
def test_windows_are_full_sized_inside_the_image_and_cover_it(width, height, tile, overlap):
    windows = window_grid(width, height, tile, overlap)
    covered = np.zeros((height, width), bool)
    for x0, y0, w, h in windows:
        assert (w, h) == (min(tile, width), min(tile, height))
        assert x0 >= 0 and y0 >= 0 and x0 + w <= width and y0 + h <= height
        covered[y0:y0 + h, x0:x0 + w] = True
    assert covered.all()


def test_slice_settings_refuse_an_overlap_as_large_as_the_tile():
    with pytest.raises(ValueError, match="overlap must be in"):
        SliceSettings(tile=256, overlap=256)
    with pytest.raises(ValueError, match="tile must be"):
        SliceSettings(tile=0)


def test_the_command_line_chooses_over_the_models_windows():
    """``choose_slicing`` (tools/infer.py and the ONNX runtime): options override the stored
    windows one by one; without a tile from either, images run whole, and an option that
    needs a tile is named."""
    from sppnet_runtime.windows import choose_slicing

    stored = SliceSettings(600, 50, "nms", 0.5)
    assert choose_slicing(stored) == stored
    assert choose_slicing(stored, merge="join") == SliceSettings(600, 50, "join", 0.5)
    assert choose_slicing(stored, tile=400, overlap=0) == SliceSettings(400, 0, "nms", 0.5)
    assert choose_slicing(stored, tile=400, no_slicing=True) is None
    assert choose_slicing(None) is None
    assert choose_slicing(None, tile=256) == SliceSettings(256)
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


class ArrayImage:
    """A LargeImage over an array (for the seam test's generated picture)."""

    def __init__(self, rgb):
        from pathlib import Path

        self.path, self.rgb = Path("generated.png"), rgb
        self.height, self.width = rgb.shape[:2]

    def read(self, x0, y0, w, h):
        return np.ascontiguousarray(self.rgb[y0:y0 + h, x0:x0 + w, ::-1])


def seam_picture(width, height, tile, overlap, side):
    """Squares of ``side`` px on black: astride every seam of the window grid (jittered by
    up to 5 px) and centred on every overlap zone, each crossing the seams of one axis only
    (a corner piece a few pixels wide is a different problem). Returns (image, boxes)."""
    rng = np.random.default_rng(0)
    windows = window_grid(width, height, tile, overlap)
    starts = [sorted({w[0] for w in windows}), sorted({w[1] for w in windows})]
    edges = [sorted({a + tile for a in st[:-1]} | set(st[1:])) for st in starts]
    zones = [[(b + a + tile) / 2 for a, b in zip(st, st[1:])] for st in starts]

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
    pred = inferencer(ArrayImage(img), progress=False)
    assert pred["windows"] == len(window_grid(900, 700, tile, overlap)) == 20  # x: 0 192 384 576 644; y: 0 192 384 444
    got = pred["bboxes"]
    for box in truth:  # each object found exactly, by exactly one box
        assert (np.abs(got - box).max(1) < 1e-3).sum() == 1, box
    extra = [b for b in got if not (np.abs(truth - b).max(1) < 1e-3).any()]
    if rule != "nms":
        assert extra == [], extra
    else:  # slivers: inside an object, cut off by a window edge, under 0.3 of it
        edges = {x for w in window_grid(900, 700, tile, overlap) for x in (w[0], w[0] + tile)}
        for b in extra:
            inside = [t for t in truth if t[0] <= b[0] and t[1] <= b[1] and b[2] <= t[2] and b[3] <= t[3]]
            assert len(inside) == 1 and (b[0] in edges or b[2] in edges), b
            assert (b[2] - b[0]) * (b[3] - b[1]) < 0.3 * side * side, b


def test_a_small_image_runs_whole_through_the_configs_pipeline(pipeline_cfg):
    """An image no larger than a tile is one window, resized by the config's Resize as
    without slicing (here 100 -> 256 px); its boxes come back in its own pixels."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    img = np.zeros((100, 100, 3), np.uint8)
    img[10:30, 40:70] = 255
    pred = SlicedInferencer(ComponentDetector(), pipeline_cfg, SliceSettings(256, 64))(ArrayImage(img), progress=False)
    assert pred["windows"] == 1
    np.testing.assert_allclose(pred["bboxes"], [[40, 10, 70, 30]], atol=1.5)  # ComponentDetector saw 256 px


# --- Reading images --------------------------------------------------------------------

def test_unreadable_truncated_and_empty_images_are_named(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.full((64, 80, 3), 90, np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-40])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path, why in ((truncated, "cannot read"), (empty, "empty"), (text, "cannot read"),
                      (tmp_path / "missing.png", "no such file"), (tmp_path / "bad.tif", "no such file")):
        with pytest.raises(ImageReadError, match=why) as err:
            open_large_image(path)
        assert str(path) in str(err.value)
    with open_large_image(good) as image:
        assert (image.width, image.height) == (80, 64)
        with pytest.raises(ValueError, match="not inside"):
            image.read(60, 0, 40, 10)


try:
    import rasterio
except ImportError:
    rasterio = None
needs_rasterio = pytest.mark.skipif(rasterio is None, reason="needs rasterio (requirements/geo.txt)")


def write_geotiff(path, rgb, transform, crs="EPSG:32617"):
    h, w = rgb.shape[:2]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs=crs,
                       transform=transform, tiled=True, blockxsize=64, blockysize=64) as dst:
        dst.write(rgb.transpose(2, 0, 1))


@needs_rasterio
def test_geotiff_windows_equal_the_array_and_carry_crs_and_transform(tmp_path):
    from affine import Affine

    rgb = np.random.default_rng(1).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    transform = Affine(0.1, 0, 404000.0, 0, -0.1, 3285000.0)
    write_geotiff(tmp_path / "ortho.tif", rgb, transform)
    with open_large_image(tmp_path / "ortho.tif") as image:
        assert (image.width, image.height) == (420, 300)
        assert image.crs.to_epsg() == 32617 and image.transform == transform
        np.testing.assert_array_equal(image.read(37, 101, 256, 150), rgb[101:251, 37:293, ::-1])
        thumb, scale = image.thumbnail(210)
        assert thumb.shape == (150, 210, 3) and scale == 0.5


@needs_rasterio
def test_geojson_boxes_map_back_to_the_pixel_boxes(tmp_path):
    """Round trip: pixel boxes -> GeoJSON in the raster's CRS -> through the inverse
    transform of the raster (read back by rasterio) -> the same pixel boxes."""
    from affine import Affine
    from rasterio.crs import CRS

    transform = Affine(0.1, 0, 404000.0, 0, -0.1, 3285000.0)
    write_geotiff(tmp_path / "ortho.tif", np.zeros((200, 200, 3), np.uint8), transform)
    pred = dict(bboxes=np.array([[10.5, 20.0, 50.0, 61.25], [0, 0, 200, 200]]), scores=[0.9, 0.4], labels=[0, 0])
    record = prediction_record(pred, ["Tree"], tmp_path / "ortho.tif")
    with open_large_image(tmp_path / "ortho.tif") as image:
        collection = json.loads(json.dumps(geojson(record, image.crs, image.transform)))
    with rasterio.open(tmp_path / "ortho.tif") as src:
        inverse = ~src.transform
        assert CRS.from_user_input(collection["crs"]["properties"]["name"]) == src.crs
    for feature, box in zip(collection["features"], record["bboxes"]):
        ring = feature["geometry"]["coordinates"][0]
        cols, rows = zip(*(inverse * tuple(p) for p in ring))
        np.testing.assert_allclose([min(cols), min(rows), max(cols), max(rows)], box, atol=1e-6)
        assert feature["properties"]["class"] == "Tree"
    # map y grows northwards: the box's top edge (row 20) is the larger northing
    first = np.array(collection["features"][0]["geometry"]["coordinates"][0])
    assert first[:, 1].max() == pytest.approx(3285000.0 - 0.1 * 20.0)


@needs_rasterio
def test_the_deepforest_geotiff_reads_with_its_crs():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("deepforest")
    if spec is None:
        pytest.skip("needs the deepforest wheel (requirements/data-nodeps.txt)")
    tif = Path(list(spec.submodule_search_locations)[0]) / "data" / "OSBS_029.tif"
    with open_large_image(tif) as image:
        assert image.crs is not None and image.width > 0
        window = image.read(0, 0, min(64, image.width), min(64, image.height))
        assert window.dtype == np.uint8 and window.shape[2] == 3
