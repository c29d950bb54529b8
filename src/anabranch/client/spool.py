"""The spool: run records a store could not take, kept on disk until it can.

When the server (or the embedded store's database) stays unreachable for the client's whole
retry budget, the recorder writes each batch it could not deliver to a file under
``$ANABRANCH_HOME/spool/<store>/`` instead of dropping it, and any later anabranch process
using the same store delivers the files, oldest first. Writing a batch twice changes
nothing in the store, so a delivery cut short is simply delivered again.

A process claims a file by renaming it with its pid before delivering it; a claim whose
process is gone is taken over. Files are private to the user (0600 in 0700 folders).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from anabranch._private import open_private, private_dir
from anabranch._redact import mask_passwords
from anabranch.exceptions import AnabranchError, StoreUnavailable
from anabranch.schemas import RecordBatch
from anabranch.schemas.text import storable_batch

_SUFFIX = ".batch.json"
_CLAIMED = ".delivering-"
_sequence = itertools.count()


class Spool:
    """The spooled batches of one store (an API URL or a database URL)."""

    def __init__(self, home: Path, store: str) -> None:
        digest = hashlib.sha256(store.encode()).hexdigest()[:16]
        self.folder = home / "spool" / digest
        self.shown_store = mask_passwords(store)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def add(self, batch: RecordBatch) -> None:
        """Keep ``batch`` on disk (durably: written, then renamed into place)."""
        try:
            body = batch.model_dump_json().encode()
        except ValueError:  # text JSON can not carry: replaced as the store would
            body = storable_batch(batch).model_dump_json().encode()
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}"
        for attempt in range(3):
            try:
                self._write(name, body)
                return
            except FileNotFoundError:
                # Another process delivered the last batch and removed the folder between
                # its creation here and the write: make it again.
                if attempt == 2:
                    raise

    def _write(self, name: str, body: bytes) -> None:
        private_dir(self.folder)
        about = self.folder / "store.txt"
        if not about.exists():
            with open_private(about, "w", encoding="utf-8") as fh:
                fh.write(self.shown_store + "\n")
        partial = self.folder / (name + ".partial")
        with open_private(partial, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        partial.rename(self.folder / (name + _SUFFIX))

    def waiting(self) -> int:
        """How many batches wait here, claimed ones included."""
        if not self.folder.is_dir():
            return 0
        return sum(
            1
            for path in self.folder.iterdir()
            if path.name.endswith(_SUFFIX) or _CLAIMED in path.name
        )

    def deliver(self, write: Callable[[RecordBatch], None]) -> int:
        """Write every waiting batch with ``write``, oldest first; returns how many were
        stored. Stops, keeping the rest, at the first one the store is unavailable for. A
        batch the store refuses for good (not a matter of reaching it) is dropped with one
        message naming it, as the recorder does with a batch it can not store."""
        delivered = 0
        with self._lock:
            for path in self._claim_all():
                try:
                    batch = RecordBatch.model_validate_json(path.read_bytes())
                except (OSError, ValueError) as exc:
                    _say(f"a spooled batch {path} could not be read ({exc}); it is left there.")
                    path.rename(path.with_name(path.name.split(_CLAIMED)[0] + ".unreadable"))
                    continue
                try:
                    write(batch)
                except StoreUnavailable:
                    self._unclaim(path)
                    self._unclaim_rest()
                    return delivered
                except AnabranchError as exc:
                    _say(f"the spooled batch {path.name} was refused by {self.shown_store} "
                         f"and dropped: {exc}")
                path.unlink(missing_ok=True)
                delivered += 1
            self._remove_if_empty()
        return delivered

    def _remove_if_empty(self) -> None:
        """Leave no folder behind once everything in it is delivered (another process
        spooling into it meanwhile keeps it)."""
        if self.waiting():
            return
        with contextlib.suppress(OSError):
            (self.folder / "store.txt").unlink(missing_ok=True)
            self.folder.rmdir()

    def _claim_all(self) -> Iterator[Path]:
        """Claim the waiting batches one by one, oldest first (other processes may be
        delivering too: a file another one claimed first is skipped)."""
        if not self.folder.is_dir():
            return
        mine = f"{_CLAIMED}{os.getpid()}"
        for path in sorted(self.folder.iterdir()):
            name = path.name
            if _CLAIMED in name:
                owner = int(name.rsplit("-", 1)[1])
                if owner == os.getpid() or _alive(owner):
                    continue
                name = name.split(_CLAIMED)[0]
            elif not name.endswith(_SUFFIX):
                continue
            claimed = path.with_name(name + mine)
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue
            yield claimed

    def _unclaim(self, path: Path) -> None:
        path.rename(path.with_name(path.name.split(_CLAIMED)[0]))

    def _unclaim_rest(self) -> None:
        mine = f"{_CLAIMED}{os.getpid()}"
        for path in self.folder.iterdir():
            if path.name.endswith(mine):
                self._unclaim(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _say(message: str) -> None:
    print(f"anabranch: {message}", file=sys.stderr)
