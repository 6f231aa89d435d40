"""Selective-search proposal files: what the tool writes, and mmdet's dataset reading them."""
import pickle
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="needs OpenCV")
pytestmark = pytest.mark.skipif(not hasattr(cv2, "ximgproc"),
                                reason="cv2 has no ximgproc: opencv-contrib-python is not installed (make setup)")

from mmdet_plugin.datasets import selective_search as ss  # noqa: E402
from mmdet_plugin.datasets import tile_voc  # noqa: E402


def _scene(tmp_path: Path) -> Path:
    """A 300 x 200 picture of three flat rectangles on a gradient, with their boxes."""
    rng = np.random.default_rng(0)
    image = np.zeros((200, 300, 3), np.uint8)
    image[..., 1] = np.linspace(40, 90, 300, dtype=np.uint8)[None]
    boxes = [(20, 30, 90, 110), (150, 40, 260, 90), (120, 120, 200, 190)]
    for (x1, y1, x2, y2), colour in zip(boxes, [(200, 30, 30), (30, 30, 220), (240, 240, 40)]):
        image[y1:y2, x1:x2] = colour
    image = np.clip(image + rng.integers(0, 12, image.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    objects = "".join(f"<object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                      f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for x1, y1, x2, y2 in boxes)
    (tmp_path / "scene.xml").write_text(f"<annotation><size><width>300</width><height>200</height></size>"
                                        f"{objects}</annotation>")
    return tmp_path / "scene.png"


@pytest.fixture(scope="module")
def devkit(tmp_path_factory):
    """A VOC devkit of four 150 x 150 tiles and the tool's proposal file for it."""
    root = tmp_path_factory.mktemp("ss")
    tile_voc.tile_sources([_scene(root)], root / "VOCss", size=150, split="train", progress=False)
    record = ss.compute_split(root / "VOCss", "train", workers=1)
    return root, record


def test_windows_are_a_fixed_order_of_xyxy_boxes_inside_the_image(tmp_path):
    image = cv2.imread(str(_scene(tmp_path)))
    first, second = ss.selective_search(image), ss.selective_search(image)
    assert np.array_equal(first, second)  # OpenCV's own order changes from call to call
    assert first.dtype == np.float32 and first.shape[1] == 4 and len(first) > 10
    assert (first[:, 0] >= 0).all() and (first[:, 1] >= 0).all()
    assert (first[:, 2] <= 300).all() and (first[:, 3] <= 200).all()
    assert (first[:, 2] > first[:, 0]).all() and (first[:, 3] > first[:, 1]).all()
    area = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    assert (np.diff(area) <= 0).all()  # largest first
    assert len(np.unique(first, axis=0)) == len(first)


def test_best_iou_against_hand_computed_overlaps():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 40]], np.float32)
    boxes = np.array([[0, 0, 10, 5], [5, 0, 15, 10], [20, 20, 30, 40]], np.float32)
    # gt 0: with box 0, 50 / 100; with box 1, 50 / 150: best 0.5. gt 1: exact.
    assert np.allclose(ss.best_iou(gt, boxes), [0.5, 1.0])
    assert np.allclose(ss.best_iou(gt, np.zeros((0, 4), np.float32)), [0, 0])


def test_the_file_is_what_mmdet_reads_one_entry_per_image(devkit):
    root, record = devkit
    path = ss.proposal_file(root / "VOCss", "train")
    proposals = pickle.loads(path.read_bytes())
    images = sorted(f"JPEGImages/{p.name}" for p in (root / "VOCss" / "JPEGImages").iterdir())
    assert sorted(proposals) == images and len(images) == 4  # 150 px tiles at x 0, 150 and y 0, 50
    import xml.etree.ElementTree as ET

    kept = sum(obj.findtext("difficult") == "0" for xml in (root / "VOCss" / "Annotations").glob("*.xml")
               for obj in ET.parse(xml).getroot().iter("object"))
    assert record["images"] == 4 and record["gt_boxes"] == kept >= 3
    # Three flat rectangles on a smooth background: selective search finds each one.
    assert record["recall_iou70"] == 1.0
    assert path.with_suffix(".json").is_file()


def test_proposals_round_trip_through_mmdet_dataset_and_pipeline(devkit):
    pytest.importorskip("mmdet", reason="needs mmdet")
    import mmdet_plugin  # noqa: F401
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    root, _ = devkit
    stored = pickle.loads(ss.proposal_file(root / "VOCss", "train").read_bytes())
    init_default_scope("mmdet")
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadProposals", num_max_proposals=None),
                dict(type="LoadAnnotations", with_bbox=True),
                dict(type="ProposalBroadcaster", transforms=[dict(type="Resize", scale_factor=2.0, keep_ratio=True)]),
                dict(type="PackDetInputs")]
    dataset = dict(type="CheckedVOCDataset", data_root=str(root) + "/", metainfo=dict(classes=("Tree",)),
                   ann_file="VOCss/ImageSets/Main/train.txt", data_prefix=dict(sub_data_root="VOCss/"),
                   proposal_file="VOCss/proposals/ss_fast_train.pkl", pipeline=pipeline)
    ds = DATASETS.build(dataset)
    assert len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        key = "JPEGImages/" + Path(item["data_samples"].img_path).name
        want = stored[key]["bboxes"] * 2  # the proposals got the image's resize
        assert np.allclose(item["data_samples"].proposals.bboxes.numpy(), want)
    # mmdet asserts one entry per annotation-file image: a file missing one is refused.
    short = dict(stored)
    short.pop(sorted(short)[0])
    (root / "short.pkl").write_bytes(pickle.dumps(short))
    with pytest.raises(AssertionError):
        DATASETS.build(dict(dataset, proposal_file=str(root / "short.pkl")))


def test_the_tool_says_what_is_missing(tmp_path, capsys):
    assert ss.main([str(tmp_path)]) == 2
    assert "ImageSets/Main" in capsys.readouterr().err


def test_the_pipeline_step_gives_what_load_proposals_gives_from_the_file(devkit):
    pytest.importorskip("mmdet", reason="needs mmdet")
    from mmdet_plugin.datasets.transforms import SelectiveSearchProposals

    root, _ = devkit
    stored = pickle.loads(ss.proposal_file(root / "VOCss", "train").read_bytes())
    key = sorted(stored)[0]
    image = cv2.imread(str(root / "VOCss" / key))  # BGR, as LoadImageFromFile loads it
    out = SelectiveSearchProposals()(dict(img=image))
    assert np.array_equal(out["proposals"], stored[key]["bboxes"])
    assert out["proposals_scores"].shape == (len(out["proposals"]), )
    assert np.array_equal(SelectiveSearchProposals(num_max_proposals=3)(dict(img=image))["proposals"],
                          stored[key]["bboxes"][:3])
