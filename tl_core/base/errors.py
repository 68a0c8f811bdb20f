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


class StoreBusy(TLError):
    """The run store is locked by another process for longer than an interactive caller waits."""


class QuotaExceeded(TLError):
    """A limit set by the server's owner was reached; the message names it, its value and what to do."""


class NotVisible(TLError):
    """A run or file that does not exist, or that belongs to another session: one message for both, so
    the answer never tells which."""
