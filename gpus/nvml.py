"""Read the GPUs of this machine through NVML (the `nvidia-ml-py` package, imported as `pynvml`)."""

import logging

from gpus.inventory import GpuInfo

log = logging.getLogger("gpuq.nvml")


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
        log.info("NVML unavailable (%s); using declared GPUs", error)
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    model_name=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_mb=int(memory.total) // (1024 * 1024),
                    simulated=False,
                )
            )
        return gpus
    except pynvml.NVMLError as error:
        log.warning("NVML failed while listing GPUs (%s); using declared GPUs", error)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
