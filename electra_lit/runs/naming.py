"""Run folder names: ``${run_name:...}`` turns a command's overrides into the folder's name.

Which overrides take part is Hydra's ``override_dirname`` with conf/common.yaml's
``exclude_keys`` (:func:`keys_not_in_run_names`): what changes the experiment names the folder;
paths, printing, logging and the step count do not.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

MAX_RUN_NAME = 120
# key=value where the value is a path (up to the next override); three parts or more are shortened
_LONG_PATH = re.compile(r"(?P<key>[\w.@/+~-]+)=(?P<path>[^,=]*/[^,=]*/[^,=]+)(?=,[\w.@/+~-]+=|$)")


def keys_not_in_run_names() -> list[str]:
    """conf/common.yaml's ``hydra.job.config.override_dirname.exclude_keys``."""
    from omegaconf import OmegaConf

    common = OmegaConf.create(resources.files("electra_lit.conf").joinpath("common.yaml").read_text())
    return list(common.hydra.job.config.override_dirname.exclude_keys)


def _short_path(match: re.Match) -> str:
    """``init_from=/data/runs/pretrain/default/checkpoints/last.ckpt`` -> ``init_from=checkpoints_last.ckpt~1a2b3c``:
    the path's last two parts, for reading, and a hash of the whole, so two paths stay two folders."""
    path = match["path"].rstrip("/")
    if len([part for part in path.split("/") if part]) < 3:
        return match[0]  # short enough to read whole
    digest = hashlib.sha1(path.encode()).hexdigest()[:6]
    return f"{match['key']}={'_'.join(path.split('/')[-2:])}~{digest}"


def run_name(override_dirname: str) -> str:
    """A run folder name from the command-line overrides ("default" when there are none).

    Long names keep a readable prefix and end in a hash of the whole, so they stay unique,
    stable across re-runs (which must find their checkpoint) and under the 255-byte file name limit.
    """
    name = _LONG_PATH.sub(_short_path, override_dirname).replace("/", "_") or "default"
    if len(name) > MAX_RUN_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_RUN_NAME - 11]}-{digest}"
    return name
