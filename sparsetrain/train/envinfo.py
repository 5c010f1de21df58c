"""What env.json records: where the code came from and what it ran on."""

from __future__ import annotations

import importlib.util
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import sparsetrain


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info() -> dict[str, Any]:
    """Commit and dirty flag of the checkout sparsetrain is imported from (None if not git)."""
    checkout = Path(sparsetrain.__file__).resolve().parents[1]
    commit = _git(checkout, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changes = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def _cupy_version() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        import cupy  # noqa: PLC0415 (optional dependency)
    except Exception:  # a broken CuPy install is still worth recording as such
        return "unimportable"
    return cupy.__version__


def collect(seed: int, device: torch.device, argv: list[str]) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "git": git_info(),
        "sparsetrain": sparsetrain.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cupy": _cupy_version(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "device": str(device),
        "gpu": gpu,
        "host": socket.gethostname(),
        "seed": seed,
        "command": [Path(sys.argv[0]).name, *argv],
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
