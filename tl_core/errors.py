"""User-facing errors: a message that says what went wrong and what to do."""


class TLError(Exception):
    """An error caused by a choice or an input the user can fix.

    The CLI prints the message without a traceback and the app shows it as a
    message box; anything else that escapes is a bug of ours.
    """


class ConfigError(TLError):
    """A configuration value is invalid; the message names the field and the fix."""


class DataUnavailable(TLError):
    """A dataset or weights file is missing and cannot be fetched (offline)."""


class RunAborted(TLError):
    """A run cannot go on (disk full while saving, out of memory at the smallest batch); the message
    says what was kept and what to do."""
