"""Small helpers shared by command modules."""

from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar on stderr (hidden when stderr is not a terminal, e.g. in CI logs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, file=sys.stderr)
