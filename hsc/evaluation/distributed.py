"""Scoring a split under torchrun: each rank scores its own image blocks, then all ranks hold the matrix.

Block ``k`` of image rows goes to rank ``k % world``. A block's scores do not depend on which
other blocks are scored (eval mode works pair by pair), so the gathered matrix is bitwise the
single-process one and so are the metrics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from hsc.distributed import current_world


def my_block_starts(n_rows: int, block: int) -> range:
    """First rows of the blocks of ``block`` rows this rank scores (all of them in one process)."""
    world = current_world()
    return range(world.rank * block, n_rows, world.size * block)


def gather_rows(sims: np.ndarray) -> np.ndarray:
    """Every rank's rows of ``sims`` (zero elsewhere) summed into the full matrix on every rank."""
    if not current_world().active:
        return sims
    # NCCL reduces only GPU tensors; gloo CPU ones.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.from_numpy(sims).to(device)
    dist.all_reduce(total)  # x + 0 == x exactly: each entry comes from the one rank that scored it
    return total.cpu().numpy()
