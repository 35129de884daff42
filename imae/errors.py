"""The project's own errors: the CLI turns each into a one-line message and exit code 2."""


class ImaeError(Exception):
    """A user-facing error: bad input, bad option, bad file."""


class ConfigError(ImaeError):
    """An option or configuration value is invalid."""


class DataError(ImaeError):
    """A data file is missing, corrupt, truncated or does not match."""


class CheckpointError(ImaeError):
    """A run directory or checkpoint cannot be used."""
