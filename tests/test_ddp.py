"""DistributedDataParallel(find_unused_parameters=False) over the SPPNet detector, two
CPU processes over gloo, in a batch where three of the four FPN levels get no RoI.

MMEngine's own launcher calls torch.cuda.set_device and fails on CPU-only torch, so
the process group is set up directly here."""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytest.importorskip("mmdet", reason="needs mmdet")

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "synth_demo" / "sppnet_r18-w16_fpn_24e_synth-voc.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmdet_plugin  # noqa: F401

    register_all_modules()
    cfg = Config.fromfile(str(CONFIG))
    # Every RoI maps to level 0 under this finest_scale: levels 1-3 get none.
    cfg.model.roi_head.bbox_roi_extractor.finest_scale = 100000
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    torch.manual_seed(100 + rank)  # different data on each rank
    levels_used = set()
    hook = model.roi_head.bbox_roi_extractor.register_forward_hook(
        lambda m, args, out: levels_used.update(m.map_roi_levels(args[1], 4).tolist()))
    for _ in range(2):  # a second step fails if the first left a reduction unfinished
        packed = demo_mm_inputs(2, [[3, 96, 128], [3, 96, 128]], num_items=[2, 3], num_classes=5)
        data = model.data_preprocessor(packed, True)
        losses = ddp(**data, mode="loss")
        loss, _ = model.parse_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
    hook.remove()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    lateral = model.neck.lateral_convs[3].conv.weight.grad.clone()
    gathered = [torch.zeros_like(lateral) for _ in range(world)]
    dist.all_gather(gathered, lateral)
    torch.save(dict(levels=sorted(levels_used), missing=missing,
                    same=all(torch.equal(gathered[0], g) for g in gathered)),
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ddp_step_with_empty_fpn_levels(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        assert res["levels"] == [0], res["levels"]
        assert res["missing"] == []
        assert res["same"]  # gradients were all-reduced, also for the RoI-less levels
