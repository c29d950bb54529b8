"""Bearer-key authentication: one shared key (ANABRANCH_API_KEY), compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(
    auto_error=False,
    description="The server's ANABRANCH_API_KEY, needed when the server was started with one.",
)


def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """Let the request through if the server has no key or the request carries it."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    if credentials is None:
        raise _unauthorized(
            "This server requires an API key: send the header `Authorization: Bearer <key>` "
            "(anabranch clients send ANABRANCH_API_KEY)."
        )
    # Header values arrive decoded as latin-1; their bytes are what the client sent.
    sent = credentials.credentials.encode("latin-1")
    if not hmac.compare_digest(sent, expected.encode()):
        raise _unauthorized(
            "The API key is not this server's: set ANABRANCH_API_KEY to the key the server "
            "was started with."
        )


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )
