"""Data-parallel fitting across processes (torchrun): one model, every rank a share of each batch.

Launched as ``torchrun --nproc-per-node N -m nervcodec encode ...``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address, and :func:`init_from_env` joins
the process group (gloo on CPU, nccl on CUDA).  What each rank does, and why:

* the same seed everywhere, and rank 0's initial parameters broadcast to the others (as
  ``DistributedDataParallel``'s constructor does), so every rank starts from one model;
* each epoch one permutation of the items, drawn from the same seeded generator on every
  rank (the role of ``DistributedSampler.set_epoch``), padded by wrapping around to whole
  global batches; global batch ``s`` is split into ``world`` equal slices and rank ``r``
  trains on slice ``r`` (:func:`shard`): the shards of an epoch are disjoint and cover
  every item;
* after each backward pass the gradients of every rank are averaged with one all-reduce of
  a flattened buffer (:meth:`Dist.average`): the mean over the global batch, which is what
  ``DistributedDataParallel`` computes.  It is done by hand rather than through DDP's hooks
  because the rate-aware fit swaps quantized weights into the parameters around the backward
  pass and also learns the quantization steps, whose gradients must be averaged too;
* every decision that ends or steers the fit (divergence, Ctrl-C, progress) is taken on
  all-reduced values at the same steps on every rank, so no rank waits forever on another.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, TypeVar

import torch
import torch.distributed as tdist

from .errors import ConfigError

__all__ = ["Dist", "init_from_env", "current", "shard", "pad_to_batches", "launched", "map_over_ranks",
           "rank_device", "local_rank", "GROUP_TIMEOUT_S"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the ranks (one all-reduce of a flat buffer)."""
        tensors = [t for t in tensors if t is not None]
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        tdist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        tdist.all_reduce(x)
        return x

    def broadcast_(self, tensors: Sequence[torch.Tensor], src: int = 0) -> None:
        for t in tensors:
            tdist.broadcast(t, src)

    def all_gather(self, obj: T) -> List[T]:
        out: List[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: T, src: int = 0) -> T:
        box = [obj]
        tdist.broadcast_object_list(box, src)
        return box[0]

    def barrier(self) -> None:
        tdist.barrier()


def leave() -> None:
    """Leave the process group this process joined, if any, after a barrier (so that no rank closes its
    connections while another still reads from them).  Called when a command has succeeded: a process
    that exits with its gloo group alive leaves the group's threads to the interpreter's teardown, which
    now and then aborts it after a successful run ("terminate called without an active exception",
    SIGABRT: seen in about 1 of 12 two-rank encodes on this project's CPU)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def launched() -> bool:
    """True when started by torchrun (or any launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> Optional[Dist]:
    """The process group this process belongs to, or None when it runs alone."""
    if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
        return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", tdist.get_rank())))
    return None


#: How long a rank waits for the others in one collective: rank 0 alone codes, writes and verifies
#: the file after the fit while the others wait for its result, which takes long on a large collection.
GROUP_TIMEOUT_S = 6 * 3600.0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, ``cuda`` without an index means this rank's own GPU (``cuda:LOCAL_RANK``)."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", local_rank())
    return device


def init_from_env(device_type: str, timeout_s: float = GROUP_TIMEOUT_S) -> Optional[Dist]:
    """Join torchrun's process group (env:// rendezvous): nccl for CUDA, gloo for the CPU.
    None when not launched with several processes.  On CUDA each rank is first bound to its own
    GPU (``LOCAL_RANK``), which nccl and the object collectives expect."""
    if not launched():
        return current()
    if not tdist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run one process")
    if not tdist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank())
        try:
            tdist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot join the torchrun process group ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return current()


def shard(perm: torch.Tensor, step: int, global_batch: int, dist: Optional[Dist]) -> torch.Tensor:
    """The items of global batch ``step`` of an epoch's permutation that this rank trains on.

    ``perm`` is the epoch's permutation already padded to whole global batches (single
    process: the last batch may be short)."""
    batch = perm[step * global_batch:(step + 1) * global_batch]
    if dist is None:
        return batch
    per = global_batch // dist.world
    return batch[dist.rank * per:(dist.rank + 1) * per]


def pad_to_batches(perm: torch.Tensor, steps: int, global_batch: int) -> torch.Tensor:
    """``perm`` repeated cyclically to ``steps * global_batch`` entries (DistributedSampler pads the
    same way), so that every rank gets the same number of items in every step."""
    need = steps * global_batch
    if need <= perm.numel():
        return perm[:need]
    reps = -(-need // perm.numel())
    return perm.repeat(reps)[:need]


def map_over_ranks(fn: Callable[[T], R], items: Sequence[T], dist: Optional[Dist]) -> List[R]:
    """``[fn(x) for x in items]`` with the items dealt round-robin over the ranks and the results
    gathered on every rank (e.g. keyframes coded in parallel)."""
    if dist is None:
        return [fn(x) for x in items]
    mine = {i: fn(items[i]) for i in range(dist.rank, len(items), dist.world)}   # only this rank's items are read
    out: dict = {}
    for part in dist.all_gather(mine):
        out.update(part)
    return [out[i] for i in range(len(items))]
