"""Folders and files only their owner may read: what anabranch keeps in ANABRANCH_HOME.

Run records, parameters, logs and results can hold anything a flow touched, so whatever
anabranch creates there is 0700 (folders) or 0600 (files) whatever the umask. Only what is
created gets that mode: an existing folder or file keeps the mode its owner gave it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any, Union

StrPath = Union[str, "os.PathLike[str]"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_NO_INHERIT = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_WRITE_FLAGS = {"w": os.O_WRONLY | os.O_TRUNC, "a": os.O_WRONLY | os.O_APPEND, "x": os.O_WRONLY}


def private_dir(path: StrPath) -> Path:
    """The folder ``path``, created 0700 (and so is each missing parent) if it does not exist.

    OSError when it can not be: PermissionError in a folder that is not writable,
    NotADirectoryError when ``path`` or a parent is a file.
    """
    folder = Path(path).expanduser()
    missing: list[Path] = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            os.mkdir(candidate, PRIVATE_DIR_MODE)
        except FileExistsError:
            if candidate.is_dir():  # another process made it meanwhile
                continue
            raise NotADirectoryError(
                errno.ENOTDIR, "a file is in the way of a folder", str(candidate)
            ) from None
        # mkdir's mode goes through the umask, which may take the owner's own bits too.
        _chmod(candidate, PRIVATE_DIR_MODE)
    return folder


def private_file(path: StrPath) -> bool:
    """Create ``path`` empty and 0600 unless it exists; True if this call created it.

    Its folder must exist (``private_dir``); OSError as ``os.open`` raises it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_INHERIT, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        _chmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_private(path: StrPath, mode: str = "wb", *, encoding: str | None = None) -> IO[Any]:
    """``open(path, mode)`` for writing ("w", "a" or "x", plus "b" for bytes); a file this
    call creates is 0600 whatever the umask, an existing one keeps its mode.

    Its folder must exist (``private_dir``); OSError as ``open`` raises it (FileExistsError
    for "x" when the file exists).
    """
    kind = mode.replace("b", "").replace("t", "")
    if kind not in _WRITE_FLAGS:
        raise ValueError(f"open_private writes: its mode is w, a or x (+ b), not {mode!r}.")
    flags = _WRITE_FLAGS[kind] | _NO_INHERIT
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        created = True
    except FileExistsError:
        if kind == "x":
            raise
        fd = os.open(path, flags)
        created = False
    try:
        if created:
            _chmod(fd, PRIVATE_FILE_MODE)
        return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
    except BaseException:
        os.close(fd)
        raise


def _chmod(target: int | Path, mode: int) -> None:
    if isinstance(target, int):
        if hasattr(os, "fchmod"):  # not on Windows, where modes mean little anyway
            os.fchmod(target, mode)
    else:
        os.chmod(target, mode)
