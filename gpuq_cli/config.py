"""Where `gpuq` finds its server and token: GPUQ_URL / GPUQ_TOKEN, else the file `gpuq login` wrote."""

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    url: str | None
    token: str | None
    source: str  # where they came from, for messages


def config_path() -> Path:
    """$GPUQ_CONFIG, else $XDG_CONFIG_HOME/gpuq/config.json (~/.config/gpuq/config.json)."""
    if explicit := os.environ.get("GPUQ_CONFIG"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "gpuq" / "config.json"


def normalize_url(url: str) -> str:
    """`host:8000`, `http://host:8000/` and `http://host:8000/api/v1` all mean the server's root."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url


def load() -> Config:
    stored: dict = {}
    path = config_path()
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    url = os.environ.get("GPUQ_URL") or stored.get("url")
    token = os.environ.get("GPUQ_TOKEN") or stored.get("token")
    source = "GPUQ_URL/GPUQ_TOKEN" if os.environ.get("GPUQ_TOKEN") else str(path)
    return Config(url=normalize_url(url) if url else None, token=token, source=source)


def save(url: str, token: str) -> Path:
    """Write the file readable by its owner only (0600), its folder 0700; never readable in between."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older partial file may have had other bits
        json.dump({"url": url, "token": token}, handle, indent=2)
        handle.write("\n")
    os.replace(partial, path)
    return path
