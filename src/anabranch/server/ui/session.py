"""Who may use the pages, and from where.

With an API key, the browser proves it once on the login page; it then holds a session
cookie (HttpOnly, SameSite=Strict) whose value is derived from the key, never the key
itself, and never in a URL. The request-limits middleware checks that cookie before any
body byte is read, as it checks the bearer key on the API.

Every state-changing request of the pages must also come from the pages themselves: htmx
sends the ``X-Anabranch-UI`` header on each of them, which another site's form or image
can not send without a CORS preflight the server never grants, and a browser's ``Origin``
header, when present, must name this server.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

COOKIE = "anabranch_session"
UI_HEADER = "x-anabranch-ui"
LOGIN_PATH = "/login"
# Paths of the pages anyone may fetch: the login form and the pages' static files.
OPEN_PREFIXES = ("/static/",)


def session_token(api_key: str) -> str:
    """The cookie's value: proves the key was entered without being the key."""
    return hmac.new(api_key.encode(), b"anabranch-ui-session", hashlib.sha256).hexdigest()


def has_session(cookie_header: bytes | None, api_key: str) -> bool:
    """Whether a request's ``Cookie`` header (raw bytes) carries this server's session."""
    if not cookie_header:
        return False
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header.decode("latin-1"))
    except Exception:
        return False
    morsel = cookies.get(COOKIE)
    return morsel is not None and hmac.compare_digest(morsel.value, session_token(api_key))


def is_open_page(method: str, path: str) -> bool:
    """What the pages serve without a session: the login form (and its answer) and the
    static files."""
    if path == LOGIN_PATH:
        return method in ("GET", "HEAD", "POST")
    return method in ("GET", "HEAD") and path.startswith(OPEN_PREFIXES)


def require_same_origin(request: Request) -> None:
    """Refuse a state-changing request that did not come from these pages (403)."""
    if request.headers.get(UI_HEADER) != "1":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This action must come from anabranch's own pages (the X-Anabranch-UI header "
            "is missing); reload the page and try again.",
        )
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Cross-site request from {origin} refused."
        )
