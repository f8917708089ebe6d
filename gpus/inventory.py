"""GPU inventory of this machine: NVML when a driver answers, else the GPUs declared in settings."""

import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("gpuq.inventory")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the inventory reads it. The readings are None where the backend has none (declared
    GPUs) or the device does not support them; `error` non-empty means the device could not be read and
    must not be used."""

    index: int
    uuid: str
    model_name: str
    memory_mb: int
    simulated: bool
    memory_used_mb: int | None = None
    utilization_percent: int | None = None
    temperature_c: int | None = None
    process_pids: tuple[int, ...] = ()
    error: str = ""


_DECLARED = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*(GB|MB)\s*(?::\s*(.+?))?\s*$", re.IGNORECASE)


def parse_declared(spec: str, *, node_name: str) -> list[GpuInfo]:
    """Parse `GPUQ_DECLARED_GPUS`: groups like `2x24GB` or `4x80GB:A100-SXM`, separated by `,`."""
    gpus: list[GpuInfo] = []
    for group in filter(None, (part.strip() for part in spec.split(","))):
        match = _DECLARED.match(group)
        if not match:
            raise ImproperlyConfigured(
                f"GPUQ_DECLARED_GPUS={spec!r}: {group!r} is not like '2x24GB' or '4x80GB:A100'"
            )
        count, size, unit, model = match.groups()
        memory_mb = int(size) * (1024 if unit.upper() == "GB" else 1)
        for _ in range(int(count)):
            index = len(gpus)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=f"SIM-{node_name}-{index}",
                    model_name=model or "Simulated GPU",
                    memory_mb=memory_mb,
                    simulated=True,
                )
            )
    return gpus


class InventoryError(Exception):
    """The backend could not list the GPUs at all (e.g. the NVIDIA driver stopped answering)."""


def detect(*, node_name: str) -> tuple[str, list[GpuInfo]]:
    """Return (backend, GPUs) for this machine according to `GPUQ_INVENTORY` (auto, nvml, declared)."""
    mode = settings.GPUQ_INVENTORY
    if mode not in ("auto", "nvml", "declared"):
        raise ImproperlyConfigured(f"GPUQ_INVENTORY={mode!r}: expected auto, nvml or declared")
    if mode in ("auto", "nvml"):
        from gpus import nvml

        gpus = nvml.read_gpus()
        if gpus is not None:
            return "nvml", gpus
        if mode == "nvml":
            raise ImproperlyConfigured("GPUQ_INVENTORY=nvml but no NVIDIA driver answered (see the log)")
        log.info("no NVML; using the declared (simulated) GPUs %s", settings.GPUQ_DECLARED_GPUS)
    return "declared", parse_declared(settings.GPUQ_DECLARED_GPUS, node_name=node_name)


def read(backend: str, *, node_name: str) -> list[GpuInfo]:
    """Read again the GPUs of the backend `detect` chose (for the periodic refresh). Raises
    InventoryError when NVML, chosen at start-up, no longer answers at all."""
    if backend == "nvml":
        from gpus import nvml

        gpus = nvml.read_gpus()
        if gpus is None:
            raise InventoryError("NVML no longer answers (see the log)")
        return gpus
    if backend == "declared":
        return parse_declared(settings.GPUQ_DECLARED_GPUS, node_name=node_name)
    raise InventoryError(f"unknown inventory backend {backend!r}")
