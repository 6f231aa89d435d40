"""Ranks of a distributed inference job (``tools/infer.py --launcher``), as MMEngine's
launchers start them: ``imagery``'s one image loop and one window loop take a ``share``
(``imagery.windows.OneProcess``'s members), and ``Ranks`` is that over torch.distributed.

Where CUDA is available, the process group is set up by MMEngine's ``init_dist`` (NCCL, as
mmdet's tools). Without it, ``init_dist('pytorch')`` fails (it calls
``torch.cuda.set_device``: "module 'torch._C' has no attribute '_cuda_setDevice'" with
CPU-only torch), so the group is set up here with the gloo backend from the environment
torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); for slurm and mpi that
environment is first derived from SLURM_* / OMPI_COMM_WORLD_* exactly as MMEngine's
``_init_dist_slurm`` / ``_init_dist_mpi`` derive it. Tested: torchrun, 2 ranks on one
machine, gloo, CPU. Not tested: slurm, mpi, several machines, NCCL.
"""
from __future__ import annotations

import os
import subprocess
import time

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


def _environment_of(launcher: str) -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT as MMEngine sets them."""
    if launcher == "slurm":
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            nodes = os.environ["SLURM_NODELIST"]
            os.environ["MASTER_ADDR"] = subprocess.getoutput(f"scontrol show hostname {nodes} | head -n1")
        os.environ.update(WORLD_SIZE=os.environ["SLURM_NTASKS"], RANK=os.environ["SLURM_PROCID"],
                          LOCAL_RANK=os.environ.get("SLURM_LOCALID", "0"))
    elif launcher == "mpi":
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            raise KeyError("The environment variable MASTER_ADDR is not set")
        os.environ.update(WORLD_SIZE=os.environ["OMPI_COMM_WORLD_SIZE"], RANK=os.environ["OMPI_COMM_WORLD_RANK"],
                          LOCAL_RANK=os.environ["OMPI_COMM_WORLD_LOCAL_RANK"])


class Ranks:
    """This process's rank in the default process group, with the collectives
    ``imagery.windows.detect_in_windows`` and ``imagery.cli.run_images`` make (objects
    pickled, as ``torch.distributed.all_gather_object``). ``seconds``: time spent in them,
    waiting for the other ranks included."""

    def __init__(self):
        import torch.distributed as dist

        self.dist, self.rank, self.world, self.seconds = dist, dist.get_rank(), dist.get_world_size(), 0.0

    def all_gather(self, obj) -> list:
        start = time.perf_counter()
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        self.seconds += time.perf_counter() - start
        return out

    def broadcast(self, obj):
        start = time.perf_counter()
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        self.seconds += time.perf_counter() - start
        return box[0]

    def close(self) -> None:
        self.dist.destroy_process_group()


def init_ranks(launcher: str) -> Ranks | None:
    """Joins the job's process group (see the module docstring); None for ``'none'``."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if launcher == "none":
        return None
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        from mmengine.dist import init_dist

        init_dist(launcher)  # NCCL, one GPU per rank (torch.cuda.set_device(LOCAL_RANK))
    else:  # CPU-only torch: MMEngine's init_dist would call torch.cuda.set_device
        _environment_of(launcher)
        dist.init_process_group("gloo")  # env://
    if dist.get_rank() != 0:  # rank 0 speaks for the job; the others say only what goes wrong (stderr)
        import sys
        import warnings

        sys.stdout = open(os.devnull, "w")  # mmengine's load_checkpoint print()s, for one
        warnings.showwarning = lambda *args, **kwargs: None  # mmdet resets the filters ('once')
    return Ranks()
