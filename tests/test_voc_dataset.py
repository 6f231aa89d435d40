"""The synthetic data set and the checked VOC dataset: bad files fail by name."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmdet", reason="needs mmdet")

import mmdet_plugin  # noqa: E402,F401
from mmdet_plugin.datasets.synthetic_voc import CLASSES, draw_image, generate  # noqa: E402


def test_generator_is_deterministic_and_varied():
    a_img, a_obj = draw_image(0, 7)
    b_img, b_obj = draw_image(0, 7)
    assert np.array_equal(a_img, b_img) and a_obj == b_obj
    assert not np.array_equal(a_img, draw_image(1, 7)[0])
    boxes = [o["box"] for i in range(60) for o in draw_image(0, i)[1]]
    sides = np.array([np.sqrt((x2 - x1 + 1) * (y2 - y1 + 1)) for x1, y1, x2, y2 in boxes])
    ratios = np.array([(x2 - x1 + 1) / (y2 - y1 + 1) for x1, y1, x2, y2 in boxes])
    assert sides.min() < 20 and sides.max() > 100  # widely varying sizes
    assert ratios.min() < 0.5 and ratios.max() > 2  # and aspect ratios
    names = {o["name"] for i in range(60) for o in draw_image(0, i)[1]}
    assert names == set(CLASSES)


def _dataset(root: Path, **kw):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    register_all_modules()
    return DATASETS.build(dict(type="CheckedVOCDataset", data_root=str(root), metainfo=dict(classes=CLASSES),
                               ann_file="VOCsynth/ImageSets/Main/trainval.txt",
                               data_prefix=dict(sub_data_root="VOCsynth/"),
                               pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True)],
                               **kw))


@pytest.fixture
def voc(tmp_path):
    generate(tmp_path, num_trainval=3, num_test=1, seed=5)
    return tmp_path


def test_clean_data_loads_with_labels_in_range(voc):
    ds = _dataset(voc)
    assert len(ds) == 3
    item = ds[0]
    assert item["gt_bboxes"].shape[0] == len(item["gt_bboxes_labels"]) > 0
    assert item["gt_bboxes_labels"].max() < len(CLASSES)
    assert ds.metainfo["dataset_type"] is None  # so the metric prints our class names


def _edit_first_xml(voc: Path, old: str, new: str) -> Path:
    xml = voc / "VOCsynth/Annotations/000000.xml"
    text = xml.read_text()
    assert old in text
    xml.write_text(text.replace(old, new, 1))
    return xml


@pytest.mark.parametrize("old, new, words", [
    ("<name>", "<name>un", "which is not one of"),
    ("<xmin>", "<xmin>9999", "inverted bndbox"),
    ("<ymax>", "<ymax>x", "non-numeric bndbox"),
    ("</annotation>", "", "not valid XML"),
])
def test_bad_annotation_names_the_file(voc, old, new, words):
    xml = _edit_first_xml(voc, old, new)
    with pytest.raises(ValueError) as info:
        _dataset(voc)
    assert str(xml) in str(info.value) and words in str(info.value)


def test_undecodable_image_names_the_file(voc):
    jpg = voc / "VOCsynth/JPEGImages/000001.jpg"
    jpg.write_bytes(b"not a jpeg")
    ds = _dataset(voc, serialize_data=False)
    with pytest.raises(Exception) as info:
        ds[1]
    assert "000001.jpg" in str(info.value)
