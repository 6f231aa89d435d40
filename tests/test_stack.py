"""The environment `make setup` builds: the OpenMMLab stack imports, mim runs,
and the kernel package stands alone."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def test_stack_imports():
    code = textwrap.dedent("""
        import torch, triton, mmengine, mmcv, mmcv.ops, mmdet, mmdet.models
        from mmcv.ops import RoIAlign, nms
        import setuptools
        major = int(setuptools.__version__.split('.')[0])
        assert 77 <= major < 81, setuptools.__version__
        print(torch.__version__, triton.__version__, mmcv.__version__, mmdet.__version__)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_mmcv_has_compiled_ops():
    import torch
    from mmcv.ops import RoIAlign

    out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 1, 4, 4), torch.tensor([[0, 0, 0, 3, 3.]]))
    assert out.shape == (1, 1, 2, 2)


def test_mim_runs_from_venv():
    mim = BIN / "mim"
    assert mim.exists(), f"{mim} missing"
    proc = subprocess.run([str(mim), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "0.3.9" in proc.stdout


def test_mim_finds_mmdet_tools():
    import mmdet

    tools = Path(mmdet.__file__).parent / ".mim" / "tools"
    assert (tools / "train.py").exists() and (tools / "test.py").exists()


def test_spp_triton_imports_without_openmmlab():
    # A meta-path finder refuses every OpenMMLab module, as on a machine without them.
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('mmcv', 'mmdet', 'mmengine', 'mim'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import torch
        import spp_triton
        out = spp_triton.spp_roi_pool(torch.randn(1, 2, 6, 6), torch.tensor([[0, 0, 0, 40, 40.]]),
                                      spatial_scales=1 / 8)
        assert out.shape == (1, 2, 50)
        assert not any(m.split('.')[0] in ('mmcv', 'mmdet', 'mmengine') for m in sys.modules)
        print('ok')
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_spp_triton_imports_without_triton():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'triton':
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import torch, spp_triton
        spp_triton.spp_roi_pool(torch.randn(1, 2, 6, 6), torch.tensor([[0, 0, 0, 40, 40.]]),
                                spatial_scales=1 / 8)
        try:
            spp_triton.spp_roi_pool(torch.randn(1, 2, 6, 6), torch.tensor([[0, 0, 0, 40, 40.]]),
                                    spatial_scales=1 / 8, backend='triton')
        except ValueError as e:
            assert 'triton' in str(e)
            print('ok')
    """)
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
