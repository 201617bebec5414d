"""Exceptions that cross the CLI boundary.

`ConfigError` is a user mistake (bad name, bad value, bad path): the CLI exits 2.
`GankdError` is anything else we can explain in one message: the CLI exits 1.
"""


class GankdError(Exception):
    """A failure with a message meant for the user, not a traceback."""


class ConfigError(GankdError, ValueError):
    """Bad input: a config key, a CLI argument, a data path."""


class MissingAssetError(GankdError):
    """A weight file is neither in the cache nor at a user path."""


class DiskFullError(GankdError):
    """A write found its disk full: one line naming the folder and the space the file needs (a
    traceback of every layer that was writing tells the user nothing more)."""


class MetricNotApplicable(GankdError):
    """A metric cannot judge these images (e.g. NIQE on images smaller than its blocks); the
    evaluation records it as missing with this reason instead of failing the run."""


def unknown_choice(kind: str, name: object, choices: list[str] | tuple[str, ...]) -> ConfigError:
    """The one wording for 'X is not one of the valid choices'."""
    valid = ", ".join(sorted(str(c) for c in choices))
    return ConfigError(f"unknown {kind} {name!r}; valid choices: {valid}")


class ImageError(ConfigError):
    """An image file that cannot be used; the message names the file. A usage error: the user
    fixes the data (the CLI exits 2)."""
