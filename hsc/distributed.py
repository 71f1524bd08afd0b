"""Running under torchrun: the process group, each process's device, and relaunching under torchrun.

One process needs none of this: without torchrun's ``WORLD_SIZE`` every function here is a
no-op and the world is rank 0 of 1. Under torchrun, CUDA processes talk over NCCL and CPU
processes over gloo, and process ``LOCAL_RANK`` of a node takes that node's GPU ``LOCAL_RANK``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.distributed as dist

from hsc.devices import resolve_device
from hsc.errors import HscError

RDZV_ENV = "HSC_RDZV_ENDPOINT"  # host:port of the multi-node rendezvous, when params leave it null


@dataclass(frozen=True)
class World:
    """This process's place among the torchrun processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, curves and metrics."""
        return self.rank == 0


def current_world() -> World:
    """The world of the initialised process group, or rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def start(device_name: str, key: str) -> tuple[World, torch.device]:
    """Join torchrun's process group when launched by it; the world and this process's device.

    ``device_name`` is a params value (auto, cpu, cuda) named by ``key`` in errors.
    """
    device = resolve_device(device_name, key)
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return current_world(), device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise HscError(f"{key}: process LOCAL_RANK={local_rank} has no GPU (this node has "
                           f"{torch.cuda.device_count()}); lower train.nproc_per_node to the GPU count")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current_world(), device


def torchrun_command(module: str, argv: Sequence[str], nproc_per_node: int, nnodes: int,
                     rdzv_endpoint: Optional[str]) -> list[str]:
    """The command that runs ``python -m <module> <argv>`` under ``torch.distributed.run`` with these
    process counts (the caller names its own entry module: the library knows no command line)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc_per_node}"]
    if nnodes == 1:
        launcher.append("--standalone")
    else:
        endpoint = rdzv_endpoint or os.environ.get(RDZV_ENV)
        if not endpoint:
            raise HscError(f"train.nnodes={nnodes} needs a rendezvous: set train.rdzv_endpoint "
                           f"(or {RDZV_ENV}) to host:port of a machine every node reaches")
        launcher += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                     f"--rdzv_id={os.environ.get('HSC_RDZV_ID', 'hsc')}"]
    return [*launcher, "-m", module, *argv]


def relaunch(module: str, argv: Sequence[str], nproc_per_node: int, nnodes: int,
             rdzv_endpoint: Optional[str]) -> int:
    """Run ``python -m <module> <argv>`` under torchrun and return its exit status (this process only waits)."""
    return subprocess.run(torchrun_command(module, argv, nproc_per_node, nnodes, rdzv_endpoint),
                          check=False).returncode


def stop() -> None:
    """Leave the process group (at the end of a command), if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
