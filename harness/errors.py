"""Errors caused by what a user wrote: the CLI prints them as one message, never a traceback."""

import difflib


class UserError(Exception):
    """A mistake in input (a name, a file, a field) with a sentence saying what would be valid."""


def unknown_name(kind: str, name: str, valid: list[str], where: str = "") -> UserError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    place = f"{where}: " if where else ""
    listing = ", ".join(sorted(valid)) or "(none installed)"
    return UserError(f"{place}unknown {kind} {name!r}.{hint} Valid {kind}s: {listing}.")
