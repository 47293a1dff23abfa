"""The one exception type for bad user input, and how commands print it: one line, exit code 2."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A config value, file or path the user gave cannot work. The message says which and how to fix it."""


class RunFault(ConfigError):
    """A foreseeable fault that stops a run (a full disk, a diverged loss): printed as one line
    that says what was kept and what to do, like a config error."""


class Abort(BaseException):
    """Carries a ConfigError (its ``__cause__``) out of a Hydra callback: Hydra turns a callback's
    exceptions into warnings and goes on, which would start a sweep already known to fail."""


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (Hydra wraps errors raised while instantiating)."""
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__ or err.__context__
    return err


@contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """Print a ConfigError raised inside as ``program: error: ...`` and exit with 2; re-raise the rest."""
    try:
        yield
    except (Exception, Abort) as err:
        config_error = config_error_in(err)
        if config_error is None:
            raise
        print(f"{program}: error: {config_error}", file=sys.stderr)
        sys.exit(2)


# Lines of Hydra's and OmegaConf's messages that repeat what the first line says.
_DETAIL = re.compile(r"^(full_key:|reference_type=|object_type=|Set the environment variable HYDRA_FULL_ERROR)")


def one_line(err: BaseException | None) -> str:
    """An error and its causes as one line, without OmegaConf's key/type detail lines."""
    parts: list[str] = []
    while err is not None:
        text = " ".join(
            line.strip() for line in str(err).splitlines() if line.strip() and not _DETAIL.match(line.strip())
        )
        if text and text not in parts:
            parts.append(text)
        err = err.__cause__
    return ": ".join(parts)
