"""What the benchmarks share."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(prefix: str, database_url: str = "") -> str:
    """Point gpuq at a fresh data folder and at `database_url` (SQLite in that folder when empty), set
    Django up in this process, and return the folder. Child processes inherit the environment."""
    data = tempfile.mkdtemp(prefix=prefix)
    os.environ.update(
        GPUQ_DATA_DIR=data, GPUQ_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="queueproject.settings"
    )
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return data


def percentile(values, q):
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def register_nodes(count: int, gpus: str = "8x80GB") -> None:
    """`count` nodes named node0, node1, … with declared GPUs (no process behind them)."""
    from gpus.inventory import parse_declared
    from gpus.services import node_register

    for i in range(count):
        name = f"node{i}"
        node_register(
            name=name, backend="declared", gpus=parse_declared(gpus, node_name=name), labels={}, boot_id=""
        )
