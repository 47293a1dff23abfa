"""Paths that may be URLs: the one place electra_lit talks to object storage.

Every path setting (``run_dir``, ``data.shards``, ``data.corpus.paths``, ``ckpt_path``,
``init_from``, the ``out_dir`` of electra-prepare-data and electra-export) takes a local path, a
``file://`` URL, or the URL of any filesystem fsspec knows whose library is installed: ``s3://``
(s3fs), ``gs://`` (gcsfs), ``az://`` (adlfs), ... Credentials and endpoints come from that library's
own environment and config files (``AWS_*`` variables and ``~/.aws`` for s3fs, including
``AWS_ENDPOINT_URL`` for an S3-compatible server; application default credentials for gcsfs;
fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>`` variables), never from electra_lit's config files.

Objects are written whole: a file is written locally first and then put (an S3 or GCS put, single
or multipart, makes the object visible complete or not at all), and downloads land in a temporary
file renamed into place, so no reader on either side sees half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.core import split_protocol, url_to_fs

from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)
# botocore's INFO lines ("Found credentials in environment variables.") would reach every job log
for _name in ("botocore", "aiobotocore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

DEFAULT_CACHE_DIR = "~/.cache/electra_lit"  # cache_dir's default (CommonConfig), for library callers too
LOCAL_PROTOCOLS = (None, "file", "local")
CHECK_TIMEOUT_S = 20.0  # a storage check that has not answered by then reports the endpoint as unreachable
INSTALL_HINTS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}

T = TypeVar("T")


def is_remote(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a URL of a filesystem other than the local one (``file://`` is local)."""
    if path is None or isinstance(path, os.PathLike):
        return False
    protocol, _ = split_protocol(str(path))
    return protocol not in LOCAL_PROTOCOLS


def local_path(path: str | os.PathLike) -> Path:
    """A local path or ``file://`` URL as a Path (``~`` expanded)."""
    protocol, rest = split_protocol(str(path))
    if protocol not in LOCAL_PROTOCOLS:
        raise ValueError(f"{path} is not a local path")
    return Path(rest).expanduser()


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local path or a URL alike."""
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def filesystem(url: str, key: str = "path") -> tuple[fsspec.AbstractFileSystem, str]:
    """(the fsspec filesystem of ``url``, the path within it); a missing filesystem library is one
    line naming the package to install."""
    try:
        return url_to_fs(str(url))
    except ImportError as err:
        protocol = split_protocol(str(url))[0]
        package = INSTALL_HINTS.get(protocol or "", f"the fsspec implementation of {protocol}://")
        raise ConfigError(
            f"{key}={url}: reading {protocol}:// URLs needs {package}: pip install {package} ({err})"
        ) from None
    except ValueError as err:  # an unknown protocol
        raise ConfigError(f"{key}={url}: {err}") from None


def mirror_dir(url: str, cache_dir: str | os.PathLike) -> Path:
    """The local folder that stands for the remote folder ``url`` on this machine: what a run writes
    before it is put there, and the cache of what was fetched from there."""
    protocol, rest = split_protocol(str(url))
    parts = [p for p in rest.strip("/").split("/") if p not in ("", ".", "..")]
    return Path(cache_dir).expanduser() / "remote" / str(protocol) / Path(*parts)


def local_dir(path: str, cache_dir: str) -> str:
    """A run folder's local side: the folder itself, or :func:`mirror_dir` of a URL (the
    ``local_dir`` resolver of the configs: Hydra's own files go there)."""
    return str(mirror_dir(path, cache_dir)) if is_remote(path) else str(path)


# ---------------------------------------------------------------- checks
def _cause(err: BaseException) -> str:
    """The reason a storage call failed, in a few words a user can act on."""
    name = type(err).__name__
    text = (str(err).splitlines() or [""])[0][:200]
    if isinstance(err, FileNotFoundError):
        return f"not found ({text})" if text else "not found"
    if isinstance(err, PermissionError) or name in ("NoCredentialsError", "PartialCredentialsError"):
        return f"access refused, check the credentials of this filesystem ({text or name})"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionError", "ClientConnectorError"):
        return f"cannot reach the endpoint ({text})"
    return f"{name}: {text}"


def _with_timeout(call: Callable[[], T], timeout: float) -> T:
    """``call()``, or TimeoutError when it has not returned within ``timeout`` seconds (a network
    call that retries forever must not hold the run before its first step)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, name="storage-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def check_url(url: str, key: str, *, must_exist: bool, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Refuse, in one line naming ``key``, the URL and the cause, a remote path that cannot be used:
    a filesystem library that is missing, a bucket that does not exist, credentials that are
    refused, an endpoint that does not answer within ``timeout`` seconds, or (``must_exist``) a
    path with nothing there. Local paths are left to their own checks."""
    if not is_remote(url):
        return
    fs, path = filesystem(url, key)
    bucket = path.split("/", 1)[0]

    def look() -> bool:
        fs.ls(bucket, detail=False)  # the bucket exists and these credentials may list it
        return fs.exists(path)

    try:
        exists = _with_timeout(look, timeout)
    except FileNotFoundError:
        raise ConfigError(
            f"{key}={url}: the bucket {bucket} does not exist (or this endpoint does not have it); "
            "create it or correct the URL"
        ) from None
    except TimeoutError as err:
        raise ConfigError(
            f"{key}={url}: cannot reach the endpoint ({err}); check the network and the endpoint setting"
        ) from None
    except Exception as err:
        raise ConfigError(f"{key}={url}: {_cause(err)}") from None
    if must_exist and not exists:
        raise ConfigError(f"{key}={url}: nothing there; correct the URL (or create it first)")


# ---------------------------------------------------------------- copies
def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")


def download(url: str, dest: str | os.PathLike) -> Path:
    """Copy the remote file ``url`` to ``dest`` through a temporary file renamed into place."""
    fs, path = filesystem(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(dest)
    try:
        fs.get_file(path, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def upload(src: str | os.PathLike, url: str) -> None:
    """Put the local file ``src`` at ``url`` (visible whole or not at all)."""
    fs, path = filesystem(url)
    fs.put_file(str(src), path)


def upload_tree(src: str | os.PathLike, url: str, skip: Callable[[Path], bool] = lambda p: False) -> int:
    """Put every file under the local folder ``src`` below ``url``; returns how many."""
    src = Path(src)
    count = 0
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        relative = file.relative_to(src)
        if skip(relative) or file.name.endswith(".part"):
            continue
        upload(file, join(url, relative.as_posix()))
        count += 1
    return count


def list_files(url: str) -> dict[str, dict[str, Any]]:
    """Every file below the remote folder ``url``: relative path -> its info (size, ETag, ...)."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        return {}
    found = fs.find(path, detail=True)
    root = path.rstrip("/") + "/"
    return {name[len(root) :]: info for name, info in found.items() if name.startswith(root)}


def fingerprint(info: dict[str, Any]) -> str:
    """What tells one version of a remote file from another: its ETag (or generation) and size."""
    tag = (
        info.get("ETag") or info.get("etag") or info.get("generation") or info.get("mtime") or info.get("LastModified")
    )
    return f"{tag}:{info.get('size')}"


def fetch(path: str, cache_dir: str | os.PathLike, key: str = "path") -> Path:
    """A local copy of ``path``: a local path as it is; a remote file or folder downloaded once into
    :func:`mirror_dir` (again when the remote copy changed). Used for what a run reads whole:
    ``ckpt_path``, ``init_from``, a tokenizer folder."""
    if not is_remote(path):
        return local_path(path)
    check_url(path, key, must_exist=True)
    fs, remote = filesystem(path, key)
    dest = mirror_dir(path, cache_dir)
    if fs.isdir(remote):
        for relative, info in list_files(path).items():
            fetch_file(join(path, relative), info, dest / relative)
        return dest
    fetch_file(path, fs.info(remote), dest)
    return dest


def fetch_file(url: str, info: dict[str, Any], dest: Path) -> None:
    """Download the remote file ``url`` (whose listing info is ``info``) to ``dest``, unless ``dest``
    is still the copy of that version: a stamp beside it records the remote version and the local
    file's own state, so a local file changed since (a log appended to) is fetched again."""
    stamp = dest.with_name(f".{dest.name}.source")
    version = hashlib.sha1(fingerprint(info).encode()).hexdigest()
    if dest.is_file() and stamp.is_file() and stamp.read_text() == _stamp(version, dest):
        return
    log.info("Fetching %s", url)
    download(url, dest)
    stamp.write_text(_stamp(version, dest))


def _stamp(version: str, path: Path) -> str:
    stat = path.stat()
    return f"{version} {stat.st_mtime_ns} {stat.st_size}"


def copy(src: str, dst: str) -> None:
    """Copy the remote file ``src`` to ``dst`` within their store (no download)."""
    fs, source = filesystem(src)
    fs.copy(source, filesystem(dst)[1])


def remove_local(path: Path) -> None:
    """Remove a local file or folder if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
