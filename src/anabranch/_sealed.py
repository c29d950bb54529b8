"""Secrets at rest: the notification URLs and webhook headers of automations are stored
sealed (Fernet: AES-128 and an HMAC), so a copy of the database alone does not give away a
Slack webhook or an API token.

The key is ANABRANCH_SECRET_KEY when set (every server replica and every process that
writes automations to the same database needs the same one), else a key made on first use
in ``$ANABRANCH_HOME/secret.key``, readable by its owner only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from anabranch._private import PRIVATE_FILE_MODE, private_dir
from anabranch.exceptions import AnabranchError
from anabranch.settings import get_settings

SEALED = "sealed:v1:"


class UnsealError(AnabranchError):
    """A stored secret was sealed with another key than this process has."""


def seal(text: str) -> str:
    """``text`` sealed for storing (once: sealed text is returned as it is)."""
    if text.startswith(SEALED):
        return text
    return SEALED + _fernet(*_key_source()).encrypt(text.encode()).decode()


def unseal(text: str) -> str:
    """The text ``seal`` sealed; text stored before sealing comes back as it is."""
    if not text.startswith(SEALED):
        return text
    try:
        return _fernet(*_key_source()).decrypt(text[len(SEALED):].encode()).decode()
    except InvalidToken:
        raise UnsealError(
            "A secret of an automation (a URL or header) was stored with another key than "
            "this process has; set ANABRANCH_SECRET_KEY to the same value for every process "
            "that uses this database (servers and the processes writing automations)."
        ) from None


def _key_source() -> tuple[str | None, Path]:
    settings = get_settings()
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    return key, settings.home_path / "secret.key"


@functools.cache
def _fernet(key: str | None, key_file: Path) -> Fernet:
    if key is not None:
        try:
            return Fernet(key.encode())
        except ValueError:
            raise AnabranchError(
                "ANABRANCH_SECRET_KEY is not a key: it must be 32 url-safe base64-encoded "
                "bytes; make one with `python -c \"from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())\"`."
            ) from None
    return Fernet(_key_in(key_file))


def _key_in(key_file: Path) -> bytes:
    """The key in ``key_file``, made (0600) if there is none; two processes making it at
    once agree on the first one written whole."""
    if not key_file.exists():
        private_dir(key_file.parent)
        draft = key_file.with_name(f".secret.key.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_bytes().strip()
