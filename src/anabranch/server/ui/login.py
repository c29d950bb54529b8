"""The login form for a server started with an API key (see session.py)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from anabranch.server.ui.render import page
from anabranch.server.ui.runs import FormFields
from anabranch.server.ui.session import COOKIE, LOGIN_PATH, session_token

router = APIRouter()


@router.get(LOGIN_PATH, include_in_schema=False)
def login_form(request: Request, next: str = "/") -> Response:
    return page(request, "login.html", next=_local(next), problem=None, bare=True)


@router.post(LOGIN_PATH, include_in_schema=False)
def login(request: Request, form: FormFields) -> Response:
    key = (form.get("key") or [""])[0]
    target = _local((form.get("next") or ["/"])[0])
    expected: str | None = request.app.state.api_key
    if expected is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(key.encode(), expected.encode()):
        return page(request, "login.html", status_code=401, next=target, bare=True,
                    problem="That is not this server's API key.")
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, session_token(expected), httponly=True, samesite="strict",
                      secure=request.url.scheme == "https", path="/")
    return answer


def _local(target: str) -> str:
    """Only a path on this server: a login link can not send the browser elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
