"""``DataCheckedRunner``: an MMEngine Runner that checks its data before it starts.

Without it, a missing data set surfaces minutes later as a stack trace from inside a
dataloader. This runner looks for every annotation file that ``train()``, ``val()`` or
``test()`` is about to use and, if one is missing, exits at once with a message that
says where the data is expected and how to run the demo instead.
"""
from __future__ import annotations

import os.path as osp

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

DEMO_HINT = ("To try the detector without it, run `make demo`: it generates the embedded "
             "synthetic VOC-format set under data/synth_voc and trains "
             "configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py on CPU.")


def _dataset_cfgs(cfg):
    """Leaf dataset configs inside Repeat/Concat/ClassBalanced wrappers."""
    if cfg is None:
        return
    if "datasets" in cfg:
        for sub in cfg["datasets"]:
            yield from _dataset_cfgs(sub)
    elif "dataset" in cfg:
        yield from _dataset_cfgs(cfg["dataset"])
    else:
        yield cfg


def missing_data(dataloader_cfg) -> list[str]:
    """Paths a dataloader config needs that do not exist."""
    if not isinstance(dataloader_cfg, dict) or "dataset" not in dataloader_cfg:
        return []
    missing = []
    for ds in _dataset_cfgs(dataloader_cfg["dataset"]):
        root = ds.get("data_root") or ""
        ann = ds.get("ann_file") or ""
        path = osp.join(root, ann) if ann else root
        if path and not osp.exists(path):
            missing.append(path)
    return missing


def _message(missing: list[str]) -> str:
    lines = ["Data not found. Missing: " + ", ".join(missing)]
    if any("VOCdevkit" in m for m in missing):
        lines.append("PASCAL VOC is expected under data/VOCdevkit/ (VOC2007/ and VOC2012/ with "
                     "Annotations/, JPEGImages/ and ImageSets/Main/), relative to where you run "
                     "the command; or pass --cfg-options with another data_root.")
    elif any("synth_voc" in m for m in missing):
        lines.append("Generate it with: python -m mmdet_plugin.datasets.synthetic_voc data/synth_voc")
    lines.append(DEMO_HINT)
    return "\n".join(lines)


@RUNNERS.register_module()
class DataCheckedRunner(Runner):
    """A ``Runner`` that exits with a clear message when its data is missing."""

    def _check(self, *dataloaders) -> None:
        missing = [m for dl in dataloaders for m in missing_data(dl)]
        if missing:
            raise SystemExit(_message(missing))

    def train(self):
        # _train_dataloader / _val_dataloader are still configs before their first use.
        self._check(self._train_dataloader, self._val_dataloader)
        return super().train()

    def val(self):
        self._check(self._val_dataloader)
        return super().val()

    def test(self):
        self._check(self._test_dataloader)
        return super().test()
