"""Pure placement: which node and GPU indices fit a job. Standard library only; no I/O."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class GpuSpec:
    memory_mb: int = 0
    model: str = ""


@dataclass(frozen=True)
class NodeFree:
    """A node that may take jobs now: the indices of its free GPUs, and (optionally) the specs of all its
    healthy GPUs, its labels, and whether it is the server's own (local) node."""

    name: str
    free: tuple[int, ...]
    specs: Mapping[int, GpuSpec] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    local: bool = False


@dataclass(frozen=True)
class Needs:
    """What a job asks of its node and GPUs beyond their number. Hashable (labels are pairs)."""

    min_memory_mb: int | None = None
    model: str | None = None  # a glob, e.g. "A100*" (case-insensitive)
    device_ids: tuple[int, ...] = ()  # these exact GPU indices
    labels: tuple[tuple[str, str], ...] = ()  # (key, glob) pairs; all must match
    target: str = "auto"  # local (the server's node), worker (other nodes), auto (any; workers first)

    @classmethod
    def of(cls, min_memory_mb=None, model=None, device_ids=(), labels=None, target="auto") -> "Needs":
        """From stored fields: labels as a dict, device ids as a list."""
        return cls(
            min_memory_mb or None,
            model or None,
            tuple(device_ids or ()),
            tuple(sorted((labels or {}).items())),
            target or "auto",
        )

    @property
    def plain(self) -> bool:
        return self == PLAIN

    def describe(self) -> str:
        parts = []
        if self.model:
            parts.append(f"model {self.model}")
        if self.min_memory_mb:
            parts.append(f"≥ {self.min_memory_mb} MB each")
        if self.device_ids:
            parts.append(f"devices {','.join(map(str, self.device_ids))}")
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in self.labels))
        if self.target != "auto":
            parts.append(f"target {self.target}")
        return "; ".join(parts)


PLAIN = Needs()


@dataclass(frozen=True)
class Placement:
    node: str
    gpus: tuple[int, ...]


def node_matches(node: NodeFree, needs: Needs) -> bool:
    if needs.target == "local" and not node.local:
        return False
    if needs.target == "worker" and node.local:
        return False
    return all(fnmatchcase(str(node.labels.get(key, "")), pattern) for key, pattern in needs.labels)


def gpu_matches(spec: GpuSpec | None, needs: Needs) -> bool:
    if spec is None:
        return not (needs.min_memory_mb or needs.model)
    if needs.min_memory_mb and spec.memory_mb < needs.min_memory_mb:
        return False
    return not needs.model or model_matches(spec.model, needs.model)


def model_matches(model: str, pattern: str) -> bool:
    """Case-insensitive glob on the model name, with or without NVML's vendor prefix: "A100*" matches
    "NVIDIA A100-SXM4-80GB"."""
    model, pattern = model.lower(), pattern.lower()
    return fnmatchcase(model, pattern) or fnmatchcase(model.removeprefix("nvidia "), pattern)


def eligible(node: NodeFree, indices, needs: Needs) -> tuple[int, ...]:
    """Those of `indices` (GPU indices of `node`) the job may use."""
    if needs.plain:
        return tuple(indices)
    if not node_matches(node, needs):
        return ()
    chosen = [i for i in indices if gpu_matches(node.specs.get(i), needs)]
    if needs.device_ids:
        wanted = set(needs.device_ids)
        chosen = [i for i in chosen if i in wanted]
    return tuple(chosen)


def could_ever_fit(gpu_count: int, nodes, needs: Needs) -> bool:
    """Whether some node has, free or busy, enough GPUs this job may use."""
    return any(len(eligible(node, node.specs.keys() or node.free, needs)) >= gpu_count for node in nodes)


def place(gpu_count: int, nodes, needs: Needs = PLAIN) -> Placement | None:
    """Best fit: among nodes with `gpu_count` usable free GPUs, the one with the fewest usable free GPUs,
    lowest indices first. Taking the tightest node keeps whole free nodes for jobs that need many GPUs.
    Ties go to a worker over the local node (auto tries workers first), then to the node name."""
    best: tuple[int, bool, str] | None = None
    best_gpus: tuple[int, ...] = ()
    for node in nodes:
        usable = eligible(node, node.free, needs)
        if len(usable) < gpu_count:
            continue
        key = (len(usable), node.local, node.name)
        if best is None or key < best:
            best, best_gpus = key, usable
    if best is None:
        return None
    if needs.device_ids:
        return Placement(node=best[2], gpus=tuple(sorted(needs.device_ids)))
    return Placement(node=best[2], gpus=tuple(sorted(best_gpus)[:gpu_count]))
