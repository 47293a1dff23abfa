"""Run folder names: ``${run_name:...}`` turns a command's overrides into the folder's name."""

from __future__ import annotations

import hashlib

MAX_RUN_NAME = 120


def run_name(override_dirname: str) -> str:
    """A run folder name from the command-line overrides ("default" when there are none).

    Long names keep a readable prefix and end in a hash of the whole, so they stay unique,
    stable across re-runs (which must find their checkpoint) and under the 255-byte file name limit.
    """
    name = override_dirname.replace("/", "_") or "default"
    if len(name) > MAX_RUN_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_RUN_NAME - 11]}-{digest}"
    return name
