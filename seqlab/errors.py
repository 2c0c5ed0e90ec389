"""User-facing errors: each message is one sentence naming the field, file or line and what to do."""


class SeqlabError(Exception):
    """A problem the user can fix; the CLI prints the message alone, without a traceback, and exits non-zero."""


class ConfigError(SeqlabError):
    """A config value is invalid (names the key and the accepted values)."""


class DataError(SeqlabError):
    """Input data is missing, corrupt or malformed (names the file or line and what to do)."""


def report(error: Exception) -> int:
    """Print a user error as the CLIs do (one `error: ...` line on stderr); returns their exit status, 2."""
    import sys

    print(f"error: {error}", file=sys.stderr)
    return 2
