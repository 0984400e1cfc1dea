"""User-facing errors: the CLI prints these as one line, without a traceback."""


class AnalogpropError(Exception):
    """Base class for errors caused by user input, data or instruments."""


class ConfigError(AnalogpropError, ValueError):
    """A value, option or configuration file is invalid."""


class DataError(AnalogpropError):
    """A dataset file is missing, corrupt or inconsistent."""


class OutputError(AnalogpropError):
    """A file or directory cannot be written: not a directory, no permission, disk full, ..."""

    @classmethod
    def of(cls, path, error: OSError) -> "OutputError":
        """The error naming ``path`` and the operating system's reason of ``error``."""
        return cls(f"cannot write {path}: {error.strerror or error}")


class DivergedError(AnalogpropError):
    """Training produced a non-finite update: the learning rates (or beta) are too large."""


def check_finite(name, array):
    """Raise ConfigError naming `name` if `array` holds NaN or infinity."""
    import numpy as np

    a = np.asarray(array)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ConfigError(f"{name} contains {bad} NaN or infinite value(s)")
