"""Inventory: declared GPUs from settings, and NVML through a fake `pynvml` (the one faked boundary)."""

import sys
import types
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from gpus import inventory
from gpus.inventory import GpuInfo, parse_declared


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 - the real module's name
    pass


def fake_pynvml(gpus=(), init_error=None, calls=None):
    """A stand-in for nvidia-ml-py with the calls gpuq makes."""
    calls = calls if calls is not None else []
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError

    def init():
        calls.append("init")
        if init_error:
            raise init_error

    module.nvmlInit = init
    module.nvmlShutdown = lambda: calls.append("shutdown")
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    module.nvmlDeviceGetName = lambda h: h["name"]
    module.nvmlDeviceGetUUID = lambda h: h["uuid"]
    module.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(total=h["total"], used=0, free=h["total"])
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
        GpuInfo(0, "GPU-aaaa", "NVIDIA H100 80GB HBM3", 81920, False),
        GpuInfo(1, "GPU-bbbb", "NVIDIA H100 80GB HBM3", 81920, False),
    ]
    assert calls == ["init", "shutdown"]


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
