"""``CheckedVOCDataset``: mmdet's VOCDataset that refuses bad annotations by name.

mmdet's XMLDataset silently drops objects whose class is not in ``classes`` and
accepts inverted or non-numeric boxes; a typo in a class name then trains a model
that never sees that class. This subclass raises a ``ValueError`` naming the XML
file and the object instead. Images that do not decode already fail with the file
name in mmcv's ``LoadImageFromFile`` ("failed to load image: <path>").

Two more things mmdet's VOCDataset cannot do: any class list comes from the config's
``metainfo=dict(classes=...)`` (one class, such as ``('Tree',)``, included), and images
need not be JPEG: mmdet always reads ``JPEGImages/<id>.jpg``; here, when the annotation's
``<filename>`` names another file of the same id (``<id>.png``, written by
``tile_voc``), that file is read.
"""
from __future__ import annotations

import math
import os.path as osp
import xml.etree.ElementTree as ET

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS


class AnnotationError(ValueError):
    pass


@DATASETS.register_module()
class CheckedVOCDataset(VOCDataset):
    """VOCDataset whose annotation problems raise ``AnnotationError`` with the file."""

    def parse_data_info(self, img_info: dict):
        try:
            named = ET.parse(img_info["xml_path"]).getroot().findtext("filename")
            if named and osp.splitext(named)[0] == img_info["img_id"]:
                img_info = dict(img_info, file_name=osp.join(osp.dirname(img_info["file_name"]), named))
            return super().parse_data_info(img_info)
        except ET.ParseError as err:
            raise AnnotationError(f"{img_info['xml_path']}: not valid XML ({err})") from None
        except AnnotationError as err:
            raise AnnotationError(f"{img_info['xml_path']}: {err}") from None

    def _parse_instance_info(self, raw_ann_info, minus_one: bool = True):
        classes = self._metainfo["classes"]
        for i, obj in enumerate(raw_ann_info.findall("object")):
            name = obj.findtext("name")
            if name not in classes:
                raise AnnotationError(f"object {i} has class {name!r}, which is not one of {tuple(classes)}")
            box = obj.find("bndbox")
            try:
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise AnnotationError(f"object {i} ({name}) has a missing or non-numeric bndbox") from None
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                raise AnnotationError(f"object {i} ({name}) has a non-finite bndbox")
            if x2 < x1 or y2 < y1:
                raise AnnotationError(f"object {i} ({name}) has an inverted bndbox "
                                      f"(xmin={x1:g}, ymin={y1:g}, xmax={x2:g}, ymax={y2:g})")
        return super()._parse_instance_info(raw_ann_info, minus_one)
