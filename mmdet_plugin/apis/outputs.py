"""What ``tools/infer.py`` writes for a whole image: JSON in pixels, a picture, and for a
georeferenced raster the boxes in map coordinates as GeoJSON.

* ``preds/<stem>.json``: mmdet's ``DetInferencer`` format (``labels``, ``scores``,
  ``bboxes`` as x1, y1, x2, y2 in the image's pixels), plus ``classes`` (label names),
  ``image`` and, for sliced inference, ``sliced`` (tile, overlap, merge rule, windows).
* ``vis/<name>`` (PNG for TIFF input): the image with the boxes above the score threshold,
  drawn by Pillow on a copy whose longer side is at most ``max_side`` px (a 10,000 px
  orthophoto is drawn at 4,096 px, not held at full size a second time).
* ``preds/<stem>.geojson`` for a raster with a CRS: one Polygon Feature per box (all
  boxes, as the JSON), its corners taken through the raster's affine transform (pixel
  corner (col, row) -> map x, y), properties ``score``, ``label``, ``class`` and the
  pixel box; the CRS is named in the file's ``crs`` member as GDAL/QGIS read it
  (``urn:ogc:def:crs:EPSG::<code>``, or the CRS's WKT when it has no EPSG code). RFC 7946
  GeoJSON assumes WGS 84; the boxes are kept in the raster's own CRS (a UTM zone for
  NEON's orthophotos) so that they stay rectangles and match the raster exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sppnet_runtime.outputs import draw_record, prediction_record, write_json

from ..datasets.large_image import LargeImage

__all__ = ["prediction_record", "write_json", "draw_boxes", "crs_member", "geojson", "write_geojson"]


def draw_boxes(image: LargeImage, record: dict, path: Path, score_thr: float, palette=None,
               max_side: int = 4096) -> Path:
    """The image with the boxes scoring above ``score_thr`` and their class and score."""
    rgb, scale = image.thumbnail(max_side)
    return draw_record(rgb, record, path, score_thr, palette, scale)


def crs_member(crs) -> dict:
    """GeoJSON's (2008) ``crs`` member naming ``crs``, as GDAL writes and reads it."""
    epsg = crs.to_epsg()
    name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs.to_wkt()
    return {"type": "name", "properties": {"name": name}}


def geojson(record: dict, crs, transform) -> dict:
    """A FeatureCollection of the record's boxes in map coordinates (see the module docstring)."""
    features = []
    for box, score, label, name in zip(record["bboxes"], record["scores"], record["labels"], record["classes"]):
        x1, y1, x2, y2 = box
        ring = [transform * corner for corner in ((x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1))]
        features.append({"type": "Feature",
                         "geometry": {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in ring]]},
                         "properties": {"score": score, "label": label, "class": name, "pixel_bbox": box}})
    return {"type": "FeatureCollection", "crs": crs_member(crs), "features": features}


def write_geojson(record: dict, image: LargeImage, path: Path) -> Path | None:
    """Writes the GeoJSON if ``image`` is georeferenced; returns its path, else None."""
    if image.crs is None or image.transform is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(geojson(record, image.crs, image.transform)))
    return path
