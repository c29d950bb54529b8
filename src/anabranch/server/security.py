"""Bearer-key authentication: one shared key (ANABRANCH_API_KEY), compared in constant time.

``key_problem`` is the one check. The request-limits middleware applies it to every request
before any body byte is read (server/limits.py); ``require_api_key`` applies it again as a
route dependency, which is also what declares the bearer scheme in the OpenAPI document.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(
    auto_error=False,
    description="The server's ANABRANCH_API_KEY, needed when the server was started with one.",
)

MISSING_KEY = (
    "This server requires an API key: send the header `Authorization: Bearer <key>` "
    "(anabranch clients send ANABRANCH_API_KEY)."
)
WRONG_KEY = (
    "The API key is not this server's: set ANABRANCH_API_KEY to the key the server was "
    "started with."
)


def key_problem(authorization: bytes | None, expected: str) -> str | None:
    """Why a request with this ``Authorization`` header (its raw bytes) may not pass, or
    None when it carries the bearer key ``expected``."""
    scheme, _, token = (authorization or b"").strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return MISSING_KEY
    if not hmac.compare_digest(token, expected.encode()):
        return WRONG_KEY
    return None


def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """Let the request through if the server has no key or the request carries it."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    # Header values arrive decoded as latin-1; their bytes are what the client sent.
    sent = request.headers.get("authorization")
    problem = key_problem(sent.encode("latin-1") if sent is not None else None, expected)
    if problem is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=problem, headers={"WWW-Authenticate": "Bearer"}
        )
