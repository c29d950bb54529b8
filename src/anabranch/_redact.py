"""Passwords never printed: every URL anabranch shows (a database URL, a server's URL, a
storage location) goes through ``mask_passwords`` first."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# SQLAlchemy's own mask (render_as_string(hide_password=True)), so every printed URL agrees.
_MASK = "***"
# Query parameters that carry a secret (psycopg takes ?password=, some URLs a token).
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token|api_key)=)[^&,]*")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host`` or
    ``?password=``; comma-separated lists too) replaced by ``***``."""
    masked = ",".join(_mask_url(part) for part in text.split(","))
    return _SECRET_QUERY.sub(rf"\g<1>{_MASK}", masked)


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (an unbalanced "[", say): hide whatever may be userinfo
        return _mask_userinfo_text(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def _mask_userinfo_text(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:{_MASK}@{host}"
