"""The harness anabranch's own tests use, shipped so users can test their flows the same way."""

from anabranch.testing.clock import FakeClock
from anabranch.testing.home import temporary_home
from anabranch.testing.waits import wait_until

__all__ = ["FakeClock", "temporary_home", "wait_until"]
