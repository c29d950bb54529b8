"""Secrets never printed: every URL anabranch shows (a database URL, a server's URL, a
storage location) goes through ``mask_passwords`` first, and automations' notification and
webhook URLs and headers, which carry tokens in their path, query and values
(``https://hooks.slack.com/services/T0/B0/XXX``, ``slack://TokenA/TokenB/TokenC``), through
``mask_action``. ``is_masked`` lets an update that sends a masked value back keep the stored
one."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# SQLAlchemy's own mask (render_as_string(hide_password=True)), so every printed URL agrees.
MASK = "***"
# Query parameters that carry a secret (psycopg takes ?password=, some URLs a token).
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token|api_key)=)[^&,]*")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host`` or
    ``?password=``; comma-separated lists too) replaced by ``***``."""
    masked = ",".join(_mask_url(part) for part in text.split(","))
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", masked)


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (an unbalanced "[", say): hide whatever may be userinfo
        return _mask_userinfo_text(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _mask_userinfo_text(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:{MASK}@{host}"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?")
# Headers that describe the payload rather than authorise it.
_HARMLESS_HEADERS = frozenset({"content-type", "accept", "user-agent"})


def mask_url(url: str) -> str:
    """``url`` with its scheme, host, port and user name kept and everything else ``***``.

    ``mailto://user:pass@smtp.example.com`` -> ``mailto://user:***@smtp.example.com``;
    ``json://127.0.0.1:8080/hook?token=x`` -> ``json://127.0.0.1:8080/***``. A "host" that
    is no host name or IP address is a token (``slack://TokenA/...`` -> ``slack://***``).
    Text that is no URL at all is masked whole; this never raises.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return MASK if url else url
    end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    user = f"{userinfo.partition(':')[0]}:{MASK}@" if ":" in userinfo else userinfo + at
    host = _host_and_port(hostport)
    if host is None:
        return f"{scheme}://{user}{MASK}"
    return f"{scheme}://{user}{host}{tail if tail in ('', '/') else '/' + MASK}"


def _host_and_port(hostport: str) -> str | None:
    """``hostport`` when it is a host name or IP address with an optional numeric port."""
    if hostport.startswith("["):  # an IPv6 literal, [::1]:8080
        host, bracket, port = hostport[1:].partition("]")
        port = port.removeprefix(":")
        if not bracket or not _is_ip(host):
            return None
    else:
        host, _, port = hostport.partition(":")
        if not (host == "localhost" or _is_ip(host) or _HOSTNAME.fullmatch(host)):
            return None
    return hostport if port == "" or port.isdigit() else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with every value ``***`` except Content-Type, Accept and
    User-Agent, which say what is sent, not who may send it."""
    return {k: v if k.lower() in _HARMLESS_HEADERS else MASK for k, v in headers.items()}


def is_masked(value: object) -> bool:
    """Whether ``value`` is text a mask here produced (it contains ``***``)."""
    return isinstance(value, str) and MASK in value


def mask_action(action: dict[str, Any]) -> dict[str, Any]:
    """A copy of an action's fields with its ``url`` and ``headers`` masked, when present."""
    masked = dict(action)
    if isinstance(masked.get("url"), str):
        masked["url"] = mask_url(masked["url"])
    if isinstance(masked.get("headers"), dict):
        masked["headers"] = mask_headers(masked["headers"])
    return masked
