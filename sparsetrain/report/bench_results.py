"""`sparsetrain bench` JSON as plain rows, for `table` and `plot tradeoff --bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparsetrain.errors import ConfigError


def read_bench(path: Path) -> tuple[list[dict[str, Any]], str]:
    """(result rows, device name) of a bench JSON file; a ConfigError when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return list(data["results"]), data.get("environment", {}).get("device", "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path}: not a sparsetrain bench JSON file ({error})") from None
