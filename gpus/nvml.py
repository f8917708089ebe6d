"""Read the GPUs of this machine through NVML (the `nvidia-ml-py` package, imported as `pynvml`).

Per GPU: index, UUID, model name and total memory (required: a device where one of them cannot be read
is reported with `error`, and is not used), and the optional readings used memory, utilization,
temperature and the pids of the processes using it (None, or no pids, where the device does not
support one, e.g. NVMLError_NotSupported on some boards)."""

import logging

from gpus.inventory import GpuInfo

log = logging.getLogger("gpuq.nvml")

_MB = 1024 * 1024


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_gpus() -> list[GpuInfo] | None:
    """The GPUs NVML reports, or None when there is no usable driver (no GPU, driver not loaded, …)."""
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        # LibraryNotFound (no driver), DriverNotLoaded, LibRmVersionMismatch (driver upgraded, no reboot)…
        log.info("NVML unavailable (%s)", error)
        return None
    try:
        return [_read_device(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as error:
        log.warning("NVML failed while listing GPUs (%s)", error)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _read_device(pynvml, index: int) -> GpuInfo:
    """One device; an NVML error on a required reading gives a GpuInfo with `error` (unhealthy)."""
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        model_name = _text(pynvml.nvmlDeviceGetName(handle))
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    except pynvml.NVMLError as error:
        log.warning("NVML: GPU %s cannot be read (%s); marking it unhealthy", index, error)
        return GpuInfo(
            index=index,
            uuid="",
            model_name="",
            memory_mb=0,
            simulated=False,
            error=f"NVML error: {error}",
        )
    known = {"index": index, "uuid": uuid, "model_name": model_name, "memory_mb": int(memory.total) // _MB}
    try:
        utilization = _optional(pynvml, lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        temperature = _optional(
            pynvml, lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        )
        pids = _process_pids(pynvml, handle)
    except pynvml.NVMLError as error:  # only a lost GPU gets here (see _optional)
        log.warning("NVML: GPU %s is lost (%s); marking it unhealthy", index, error)
        return GpuInfo(**known, simulated=False, error=f"NVML error: {error}")
    used = getattr(memory, "used", None)
    return GpuInfo(
        **known,
        simulated=False,
        memory_used_mb=int(used) // _MB if used is not None else None,
        utilization_percent=int(utilization) if utilization is not None else None,
        temperature_c=int(temperature) if temperature is not None else None,
        process_pids=pids,
    )


def _optional(pynvml, read):
    """The value of an optional reading, or None when NVML cannot give it (NotSupported, NoPermission,
    FunctionNotFound on an older driver…). A lost GPU is not optional: that error goes on."""
    lost = getattr(pynvml, "NVMLError_GpuIsLost", None)
    try:
        return read()
    except pynvml.NVMLError as error:
        if lost is not None and isinstance(error, lost):
            raise
        return None


def _process_pids(pynvml, handle) -> tuple[int, ...]:
    """Pids of the compute and graphics processes on the device (each list empty if it cannot be read).

    `nvmlDeviceGetComputeRunningProcesses` is the v3 call, missing from drivers older than 510: fall
    back to v2 there."""
    pids: set[int] = set()
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        procs = _optional(pynvml, lambda name=name: getattr(pynvml, name)(handle))
        if procs is None and hasattr(pynvml, f"{name}_v2"):
            procs = _optional(pynvml, lambda name=name: getattr(pynvml, f"{name}_v2")(handle))
        pids.update(int(p.pid) for p in procs or ())
    return tuple(sorted(pids))
