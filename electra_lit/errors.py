"""The one exception type for bad user input, so the CLI can print it as a one-line error."""


class ConfigError(ValueError):
    """A config value, file or path the user gave cannot work. The message says which and how to fix it."""
