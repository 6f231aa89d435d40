"""Cutting annotated images into VOC tiles (mmdet_plugin.datasets.tile_voc), the tree set
built from the deepforest wheel, and CheckedVOCDataset reading the result."""

import numpy as np
import pytest

from mmdet_plugin.datasets import tile_voc
from imagery.windows import axis_windows
from mmdet_plugin.datasets.tile_voc import Box, Tile, make_tiles, split_tiles, tile_boxes


def tile_origins(length, size, overlap):
    """tile_voc's fixed-size tiles along one axis (imagery.windows' grid, fixed=True)."""
    return [start for start, _ in axis_windows(length, size, overlap, fixed=True)]


@pytest.mark.parametrize("length, size, overlap, want", [
    (1000, 400, 0, [0, 400, 600]),      # the last tile moves back to end at the edge
    (800, 400, 0, [0, 400]),            # exact fit
    (1000, 400, 100, [0, 300, 600]),    # step 300; 600 + 400 = 1000 ends at the edge
    (1100, 400, 100, [0, 300, 600, 700]),
    (250, 400, 0, [0]),                 # smaller than a tile: one tile of the image's size
])
def test_tile_origins_cover_every_pixel_with_full_tiles(length, size, overlap, want):
    got = tile_origins(length, size, overlap)
    assert got == want
    assert got[-1] + min(size, length) == length
    assert all(b - a <= size for a, b in zip(got, got[1:]))  # no gap between tiles


def test_tile_origins_refuse_bad_sizes():
    with pytest.raises(ValueError, match="overlap < tile"):
        tile_origins(1000, 400, 400)


def test_cut_boxes_follow_the_documented_rule():
    boxes = [Box(10, 10, 50, 50, "Tree"),            # inside
             Box(380, 10, 420, 50, "Tree"),          # half inside (v = 0.5): kept
             Box(390, 10, 430, 50, "Tree"),          # v = 0.25: kept, difficult
             Box(500, 10, 540, 50, "Tree"),          # outside
             Box(20, 20, 30, 30, "Tree", difficult=True)]  # stays difficult
    got = tile_boxes(boxes, 0, 0, 400, 400)
    assert [(b.x1, b.y1, b.x2, b.y2, b.difficult) for b in got] == [
        (10, 10, 50, 50, False), (380, 10, 400, 50, False), (390, 10, 400, 50, True), (20, 20, 30, 30, True)]
    shifted = tile_boxes([Box(410, 420, 450, 470, "Tree")], 400, 400, 400, 400)
    assert [(b.x1, b.y1, b.x2, b.y2) for b in shifted] == [(10, 20, 50, 70)]  # in the tile's own pixels


def test_the_val_split_is_whole_tiles_and_train_never_overlaps_it():
    tiles = make_tiles(tile_voc.Path("a.png"), 100, 350, 330, [], overlap=0)
    assert len(tiles) == 16
    splits = split_tiles(tiles, 0.25, seed=3)
    assert len(splits["val"]) == 4
    assert not any(t.overlaps(v) for t in splits["train"] for v in splits["val"])
    assert split_tiles(tiles, 0.25, seed=3)["val"] == splits["val"]  # fixed by the seed
    assert Tile(tile_voc.Path("a.png"), 0, 0, 100, 100).overlaps(Tile(tile_voc.Path("a.png"), 99, 99, 100, 100))
    assert not Tile(tile_voc.Path("a.png"), 0, 0, 100, 100).overlaps(Tile(tile_voc.Path("b.png"), 0, 0, 100, 100))


def _write_source(folder, width=500, height=300):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / "scene.png")
    (folder / "scene.xml").write_text(
        "<annotation><size><width>500</width><height>300</height></size>"
        "<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>60</xmax>"
        "<ymax>80</ymax></bndbox></object>"
        "<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>180</xmin><ymin>100</ymin><xmax>230</xmax>"
        "<ymax>150</ymax></bndbox></object></annotation>")
    return folder / "scene.png"


def test_tiles_round_trip_through_checked_voc_dataset(tmp_path):
    pytest.importorskip("mmdet", reason="needs mmdet")
    import mmdet_plugin  # noqa: F401
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    source = _write_source(tmp_path)
    counts = tile_voc.tile_sources([source], tmp_path / "VOCtiles", size=200, split="test", progress=False)
    assert counts == {"test": 6}  # x: 0, 200, 300; y: 0, 100
    init_default_scope("mmdet")
    ds = DATASETS.build(dict(type="CheckedVOCDataset", data_root=str(tmp_path) + "/", metainfo=dict(classes=("Tree",)),
                             ann_file="VOCtiles/ImageSets/Main/test.txt", data_prefix=dict(sub_data_root="VOCtiles/"),
                             test_mode=True, pipeline=[]))
    infos = {ds.get_data_info(i)["img_id"]: ds.get_data_info(i) for i in range(len(ds))}
    first = infos["scene_0_0"]
    assert first["img_path"].endswith("scene_0_0.png")  # mmdet alone would look for a .jpg
    # The box 180-230 x 100-150 lies across tiles (0, 0), (200, 0) and (0, 100): in tile
    # (0, 0) it is 20 of 50 px wide (v = 0.4 < 0.5): difficult, i.e. ignored. (mmdet reads
    # VOC's 1-based pixels and subtracts 1; the tiles keep the source's convention.)
    assert [(i["bbox"], i["ignore_flag"]) for i in first["instances"]] == [
        ([9, 19, 59, 79], 0), ([179, 99, 199, 149], 1)]
    from PIL import Image

    with Image.open(tmp_path / "VOCtiles" / "JPEGImages" / "scene_200_100.png") as tile, Image.open(source) as src:
        assert np.array_equal(np.asarray(tile), np.asarray(src)[100:300, 200:400])


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="scene.png: the image is missing"):
        tile_voc.tile_sources([tmp_path / "scene.png"], tmp_path / "out")
    assert tile_voc.main([str(tmp_path / "scene.png"), "--out", str(tmp_path / "out")]) == 2


def test_the_tree_set_names_how_to_get_the_photographs_when_they_are_missing(monkeypatch, tmp_path):
    from mmdet_plugin.datasets import trees

    monkeypatch.setattr(trees, "data_folders", lambda: [tmp_path / "nothing"])
    with pytest.raises(FileNotFoundError, match=r"nothing: run `python scripts/unpack_wheel_data.py deepforest==2\.1\.0"):
        trees.deepforest_data()


def _have_tree_photographs() -> bool:
    from mmdet_plugin.datasets import trees

    try:
        return trees.deepforest_data().is_dir()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _have_tree_photographs(), reason="needs the deepforest wheel's photographs (make setup)")
def test_the_tree_set_is_built_from_the_wheel(tmp_path):
    from mmdet_plugin.datasets import trees

    voc = trees.prepare(tmp_path, progress=False)
    lists = {s: (voc / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert len(lists["val"]) == 10 and len(lists["test"]) == 12 and len(lists["train"]) >= 25
    assert all(n.startswith("2019_YELL_2_541000") for n in lists["test"])  # another area
    assert not any(n.startswith("2019_YELL_2_541000") for n in lists["train"] + lists["val"])
    assert not set(lists["train"]) & set(lists["val"])
    objects = sum((voc / "Annotations" / f"{n}.xml").read_text().count("<object>") for n in lists["test"])
    assert objects >= 279  # every tree of the test image, some in two overlapping edge tiles


def test_a_truncated_image_is_named_before_any_tile_is_written(tmp_path, capsys):
    source = _write_source(tmp_path)
    source.write_bytes(source.read_bytes()[:-200])
    out = tmp_path / "out"
    assert tile_voc.main([str(source), "--out", str(out), "--size", "200"]) == 2
    err = capsys.readouterr().err
    assert f"{source}: cannot read the image" in err and "Traceback" not in err
    assert not out.exists()


def _write_bad_boxes(tmp_path):
    source = _write_source(tmp_path)
    xml = source.with_suffix(".xml")
    obj = "<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>" \
          "<ymax>{}</ymax></bndbox></object>"
    bad = obj.format(700, 10, 650, 40) + obj.format("nan", 5, 30, 40) + obj.format(-20, -10, 30, 40)
    xml.write_text(xml.read_text().replace("</annotation>", bad + "</annotation>"))
    return source


def test_bad_boxes_are_refused_by_file_and_box(tmp_path, capsys):
    """An inverted box outside the 500 x 300 image and a NaN stop the tool, each named; the
    box with negative corners is partly inside: clipped, not refused."""
    source = _write_bad_boxes(tmp_path)
    with pytest.raises(tile_voc.AnnotationError) as err:
        tile_voc.tile_sources([source], tmp_path / "out", size=200, progress=False)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("2 box(es) cannot be used")
    assert "scene.xml: object 2 (Tree) xmin=700 ymin=10 xmax=650 ymax=40: inverted" in lines[1]
    assert "scene.xml: object 3 (Tree) xmin=nan" in lines[2] and "not a finite number" in lines[2]
    assert not (tmp_path / "out").exists()
    assert tile_voc.main([str(source), "--out", str(tmp_path / "out"), "--size", "200"]) == 2
    assert "object 2 (Tree)" in capsys.readouterr().err


def test_skipped_and_clipped_boxes_are_counted(tmp_path, capsys):
    source = _write_bad_boxes(tmp_path)
    counts = tile_voc.tile_sources([source], tmp_path / "out", size=200, progress=False, skip_bad_boxes=True)
    assert counts == {"test": 6}
    err = capsys.readouterr().err
    assert err.count("tile_voc: skipped ") == 2 and "2 box(es) skipped, 1 clipped to their image" in err
    first = (tmp_path / "out" / "Annotations" / "scene_0_0.xml").read_text()
    assert "<xmin>0</xmin><ymin>0</ymin><xmax>30</xmax><ymax>40</ymax>" in first  # the clipped box
    assert first.count("<object>") == 3  # two good boxes and the clipped one


def test_check_boxes_refuses_a_box_entirely_outside_the_image():
    boxes = [Box(510, 10, 560, 40, "Tree"), Box(10, 10, 40, 40, "Tree")]
    usable, refused, clipped = tile_voc.check_boxes(boxes, 500, 300, "a.xml")
    assert usable == [boxes[1]] and clipped == 0
    assert refused == ["a.xml: object 0 (Tree) xmin=510 ymin=10 xmax=560 ymax=40: entirely outside the 500 x 300 image"]
