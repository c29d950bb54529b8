"""The one client interface: every operation of the store, declared once in
``anabranch.operations``; the embedded and HTTP transports (and their async forms) are
dispatchers over those declarations."""

from __future__ import annotations

from anabranch.operations import StoreOperations

# The name clients are typed by: the whole surface of the store.
AnabranchClient = StoreOperations

__all__ = ["AnabranchClient"]
