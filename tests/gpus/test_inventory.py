"""Inventory: declared GPUs from settings, and NVML through a fake `pynvml` (the one faked boundary)."""

import sys
import types
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from gpus import inventory, nvml
from gpus.inventory import GpuInfo, parse_declared


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - the real module's names
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    pass


class NVMLError_Unknown(NVMLError):  # noqa: N801
    pass


NVML_TEMPERATURE_GPU = 0


def _value(device: dict, key: str, default):
    """A device's reading, or its exception raised as NVML would."""
    value = device.get(key, default)
    if isinstance(value, Exception):
        raise value
    return value


def fake_pynvml(gpus=(), init_error=None, calls=None):
    """A stand-in for nvidia-ml-py with the calls gpuq makes. Each GPU is a dict: name, uuid, total and
    used (bytes), util (%), temp (°C), compute and graphics (pids); any value may be an NVMLError to
    raise, and `handle` an NVMLError raised when the device's handle is asked for."""
    calls = calls if calls is not None else []
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError
    module.NVMLError_NotSupported = NVMLError_NotSupported
    module.NVMLError_GpuIsLost = NVMLError_GpuIsLost
    module.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def init():
        calls.append("init")
        if init_error:
            raise init_error

    def handle_by_index(i):
        _value(gpus[i], "handle", None)
        return gpus[i]

    def temperature(h, sensor):
        assert sensor == NVML_TEMPERATURE_GPU
        return _value(h, "temp", 40)

    def processes(key):
        return lambda h: [SimpleNamespace(pid=pid, usedGpuMemory=1024**3) for pid in _value(h, key, [])]

    module.nvmlInit = init
    module.nvmlShutdown = lambda: calls.append("shutdown")
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = handle_by_index
    module.nvmlDeviceGetName = lambda h: _value(h, "name", "NVIDIA A100-SXM4-80GB")
    module.nvmlDeviceGetUUID = lambda h: _value(h, "uuid", "GPU-0000")
    module.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(
        total=h["total"], used=h.get("used", 0), free=h["total"] - h.get("used", 0)
    )
    module.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=_value(h, "util", 0), memory=0)
    module.nvmlDeviceGetTemperature = temperature
    module.nvmlDeviceGetComputeRunningProcesses = processes("compute")
    module.nvmlDeviceGetGraphicsRunningProcesses = processes("graphics")
    return module


def test_declared_gpus_parse_counts_sizes_and_models():
    gpus = parse_declared("2x24GB, 1x81920MB:A100-SXM4-80GB", node_name="box")
    assert [(g.index, g.memory_mb, g.model_name, g.simulated) for g in gpus] == [
        (0, 24576, "Simulated GPU", True),
        (1, 24576, "Simulated GPU", True),
        (2, 81920, "A100-SXM4-80GB", True),
    ]
    assert gpus[0].uuid == "SIM-box-0"


@pytest.mark.parametrize("spec", ["two GPUs", "2x", "x24GB", "2x24TB"])
def test_bad_declared_gpus_fail_loudly(spec):
    with pytest.raises(ImproperlyConfigured, match="GPUQ_DECLARED_GPUS"):
        parse_declared(spec, node_name="box")


def test_nvml_gpus_are_used_when_a_driver_answers(monkeypatch, settings):
    calls = []
    devices = [
        {"name": b"NVIDIA H100 80GB HBM3", "uuid": b"GPU-aaaa", "total": 80 * 1024**3},
        {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-bbbb", "total": 80 * 1024**3},
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices, calls=calls))
    settings.GPUQ_INVENTORY = "auto"
    backend, gpus = inventory.detect(node_name="box")
    assert backend == "nvml"
    assert gpus == [
        GpuInfo(0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 81920, False, 0, 0, 40, ()),
        GpuInfo(1, "GPU-bbbb", "NVIDIA H100 80GB HBM3", 81920, False, 0, 0, 40, ()),
    ]
    assert calls == ["init", "shutdown"]


def test_nvml_reads_used_memory_utilization_temperature_and_processes(monkeypatch):
    device = {
        "uuid": "GPU-aaaa",
        "total": 80 * 1024**3,
        "used": 10 * 1024**3 + 5,
        "util": 87,
        "temp": 64,
        "compute": [4102, 4101],
        "graphics": [4101, 4103],
    }
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([device]))
    (gpu,) = nvml.read_gpus()
    assert (gpu.memory_mb, gpu.memory_used_mb, gpu.utilization_percent, gpu.temperature_c) == (
        81920,
        10240,
        87,
        64,
    )
    assert gpu.process_pids == (4101, 4102, 4103) and gpu.error == "" and gpu.simulated is False


def test_nvml_readings_a_device_does_not_support_are_none_not_a_failure(monkeypatch):
    device = {
        "uuid": "GPU-aaaa",
        "total": 24 * 1024**3,
        "util": NVMLError_NotSupported("Not Supported"),
        "temp": NVMLError_NotSupported("Not Supported"),
        "compute": NVMLError_NotSupported("Not Supported"),
        "graphics": [77],
    }
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([device]))
    (gpu,) = nvml.read_gpus()
    assert (gpu.utilization_percent, gpu.temperature_c, gpu.process_pids, gpu.error) == (
        None,
        None,
        (77,),
        "",
    )
    assert gpu.memory_mb == 24576


def test_nvml_a_device_that_cannot_be_read_is_reported_with_an_error(monkeypatch):
    calls = []
    devices = [
        {"uuid": "GPU-aaaa", "total": 80 * 1024**3},
        {"handle": NVMLError_Unknown("Unknown Error"), "total": 80 * 1024**3},
        {"uuid": NVMLError_Unknown("Unknown Error"), "total": 80 * 1024**3},
        {"uuid": "GPU-dddd", "total": 80 * 1024**3, "util": NVMLError_GpuIsLost("GPU is lost")},
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices, calls=calls))
    gpus = nvml.read_gpus()
    assert [(g.index, g.error) for g in gpus] == [
        (0, ""),
        (1, "NVML error: Unknown Error"),
        (2, "NVML error: Unknown Error"),
        (3, "NVML error: GPU is lost"),
    ]
    assert gpus[3].uuid == "GPU-dddd"  # what could be read is kept
    assert calls == ["init", "shutdown"]


def test_inventory_read_rereads_the_backend_it_was_given(monkeypatch, settings):
    settings.GPUQ_DECLARED_GPUS = "1x16GB"
    (declared,) = inventory.read("declared", node_name="box")
    assert declared.simulated and (
        declared.memory_used_mb,
        declared.temperature_c,
        declared.process_pids,
    ) == (
        None,
        None,
        (),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([{"uuid": "GPU-a", "total": 1024**3, "temp": 50}]))
    assert inventory.read("nvml", node_name="box")[0].temperature_c == 50
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=NVMLError_LibraryNotFound("gone")))
    with pytest.raises(inventory.InventoryError, match="NVML no longer answers"):
        inventory.read("nvml", node_name="box")


def test_without_a_driver_auto_falls_back_to_declared(monkeypatch, settings):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=NVMLError_LibraryNotFound("no lib")))
    settings.GPUQ_INVENTORY = "auto"
    settings.GPUQ_DECLARED_GPUS = "3x16GB"
    backend, gpus = inventory.detect(node_name="box")
    assert backend == "declared"
    assert len(gpus) == 3 and all(g.simulated for g in gpus)


def test_nvml_required_but_missing_is_an_error(monkeypatch, settings):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=NVMLError_LibraryNotFound("no lib")))
    settings.GPUQ_INVENTORY = "nvml"
    with pytest.raises(ImproperlyConfigured, match="no NVIDIA driver"):
        inventory.detect(node_name="box")


def test_an_unknown_inventory_mode_is_an_error(settings):
    settings.GPUQ_INVENTORY = "magic"
    with pytest.raises(ImproperlyConfigured, match="auto, nvml or declared"):
        inventory.detect(node_name="box")
