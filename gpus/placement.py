"""Pure placement: choose a node and GPU indices for a job. Standard library only; no I/O."""

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeFree:
    """A node that may take jobs now, with the indices of its free GPUs."""

    name: str
    free: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    node: str
    gpus: tuple[int, ...]


def place(gpu_count: int, nodes: tuple[NodeFree, ...] | list[NodeFree]) -> Placement | None:
    """Best fit: the node with the fewest free GPUs that still has `gpu_count`, lowest indices first.

    Taking the tightest node keeps whole free nodes for jobs that need many GPUs. Ties go to the node
    name, so the result is deterministic.
    """
    fitting = [node for node in nodes if len(node.free) >= gpu_count]
    if not fitting:
        return None
    best = min(fitting, key=lambda node: (len(node.free), node.name))
    return Placement(node=best.name, gpus=tuple(sorted(best.free)[:gpu_count]))
