"""The rules for names users give to stored objects, checked once where the objects are
created (orchestration), so the embedded store and the server refuse the same names.

A name is addressed by the CLI and as a URL path segment of the API, and stored in SQLite
and PostgreSQL, so it must be:

- non-empty, with at least one character that is not whitespace;
- at most ``MAX_NAME_LENGTH`` (200) characters: long enough for any descriptive name, short
  enough that a URL holding two percent-encoded names stays far below the HTTP server's
  16 KiB limit on a request line (a character encodes to at most 12 bytes);
- free of control characters (NUL, newlines, tabs, DEL, ...), line separators and lone
  surrogates: PostgreSQL refuses NUL, and the others can not be typed, printed or encoded;
- neither ``.`` nor ``..``, which HTTP clients and proxies resolve as "this" and "the parent"
  path segment, so such an object could never be read or deleted through the API;
- without ``/`` when the name is one path segment of its URL (work pools, work queues,
  deployments and their flows; a concurrency limit's route takes the rest of the path).

Spaces, ``:``, ``%``, ``?``, ``#`` and any other Unicode are fine: clients percent-encode them.
"""

from __future__ import annotations

import unicodedata

from anabranch.exceptions import InvalidName

MAX_NAME_LENGTH = 200

# Control characters, lone surrogates, and the line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_name(
    name: object,
    what: str,
    *,
    error: type[ValueError] = InvalidName,
    path_segment: bool = True,
) -> None:
    """Raise ``error`` naming ``what`` (``"work pool"``), the name and the rule it breaks,
    unless ``name`` follows the rules above. ``path_segment=False`` allows ``/``."""
    problem = name_problem(name, path_segment=path_segment)
    if problem is not None:
        article = "an" if what[:1] in "aeiou" else "a"
        raise error(f"{_shown(name)} can not be {article} {what} name: {problem}.")


def name_problem(name: object, *, path_segment: bool = True) -> str | None:
    """Which rule ``name`` breaks, or None when it is a valid name."""
    if not isinstance(name, str):
        return f"a name is text, not {type(name).__name__}"
    if not name.strip():
        return "a name needs at least one character that is not whitespace"
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name):,} characters, and a name has at most {MAX_NAME_LENGTH}"
    for position, char in enumerate(name):
        if unicodedata.category(char) in _UNPRINTABLE:
            return (
                f"it holds the control character {char!r} at position {position}; names "
                "can not hold control characters (NUL, newlines, tabs) or line separators"
            )
    if name in (".", ".."):
        return (
            "'.' and '..' mean this and the parent folder in a URL path, so it could not be "
            "read or deleted through the API"
        )
    if path_segment and "/" in name:
        return "a name is one part of its URL, so it can not hold '/'"
    return None


def _shown(name: object) -> str:
    """The name for an error message, cut short if it is long."""
    text = repr(name)
    if len(text) > 80:
        text = f"{text[:60]}...{text[-10:]} ({len(name) if isinstance(name, str) else '?'} chars)"
    return text
