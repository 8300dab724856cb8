"""Where a Lightning fit runs (``params.yaml``'s ``compute``), and what each process of a distributed fit does.

One machine, one CPU process is the default and needs none of this: ``compute`` only ever
becomes Lightning ``Trainer`` arguments, and Lightning's own strategies (DDP over gloo on
CPUs, NCCL on GPUs) and launchers (its own, torchrun, SLURM) do the distributing.

Every process of a distributed fit runs the whole stage command: reading inputs is
deterministic, each process trains on its own share of each step's draws, DDP keeps the
weights equal, and only the global rank zero writes the stage's outputs (``is_global_zero``).

A fit takes the same number of optimiser steps at any world size; each process draws its own
``batch_size`` per step, so a step sees world × batch_size items. Samplers get this from
``PerProcess``: one seeded draw for all processes together, dealt out by rank, so one process
alone draws exactly what it always drew.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sized
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.utils.data import Sampler

if TYPE_CHECKING:
    from alcycle.params import ComputeParams

# The ``compute`` keys that change what a fit computes: the stages that fit list them as DVC params.
FIT_KEYS = ("compute.accelerator", "compute.devices", "compute.num_nodes", "compute.strategy", "compute.precision")


def trainer_arguments(compute: ComputeParams | None) -> dict[str, Any]:
    """``pl.Trainer`` keyword arguments for ``compute`` (None: one CPU process, as before ``compute`` existed)."""
    if compute is None:
        return {"accelerator": "cpu", "devices": 1}
    arguments: dict[str, Any] = {"accelerator": compute.accelerator, "devices": compute.devices,
                                 "num_nodes": compute.num_nodes, "strategy": compute.strategy,
                                 "precision": compute.precision}
    if compute.devices * compute.num_nodes > 1:
        # Lightning would swap the samplers for DistributedSampler, which drops draws with
        # replacement and the step count; PerProcess shares out the draws instead.
        arguments["use_distributed_sampler"] = False
    return arguments


def ray_address(compute: ComputeParams) -> str:
    """The Ray cluster the pool-wide stages (extract, embed) and campaign cells run on: the
    setting, else ``RAY_ADDRESS``; "" for none (this machine, without Ray)."""
    return compute.ray_address or os.environ.get("RAY_ADDRESS", "")


def process_rank() -> tuple[int, int]:
    """(global rank, world size) of this process in a running distributed fit; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_global_zero() -> bool:
    """Whether this process writes the stage's outputs: the only process, or global rank zero of a
    distributed run. Before a fit has joined the processes, the launchers' variables tell
    (torchrun's RANK, SLURM's SLURM_PROCID, Lightning's NODE_RANK and LOCAL_RANK)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return all(int(os.environ.get(name, "0")) == 0 for name in ("SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"))


def deal(indices: list[int], rank: int, world: int) -> list[int]:
    """The share of process ``rank`` of ``world``: every world-th index from position ``rank``,
    the list first padded from its start to a multiple of ``world`` (equal shares)."""
    padded = indices + indices[: -len(indices) % world]
    return padded[rank::world]


class SamplerFactory(Protocol):
    def __call__(self, world: int) -> Sized: ...


class PerProcess(Sampler[int]):
    """This process's share of a draw made for all processes of a fit together.

    ``draw(world)`` gives the indices (any sized iterable: a sampler, a range) for ``world``
    processes, each wanting as many as one process alone (world × as many with replacement,
    world passes for an epoch); the process of rank r takes every world-th from position r,
    padded from the start so that every process takes as many steps (DDP would wait forever
    on one that stopped early). Outside a distributed fit this is ``draw(1)`` unchanged.
    The world is read when the loader is iterated, inside the fit, after Lightning has
    joined the processes.
    """

    def __init__(self, draw: SamplerFactory) -> None:
        self.draw = draw

    def __iter__(self) -> Iterator[int]:
        rank, world = process_rank()
        if world == 1:
            return iter(self.draw(1))  # type: ignore[call-overload]
        return iter(deal(list(self.draw(world)), rank, world))  # type: ignore[call-overload]

    def __len__(self) -> int:
        _, world = process_rank()
        return math.ceil(len(self.draw(world)) / world)
