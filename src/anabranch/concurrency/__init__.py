"""Named concurrency limits: ``sync.concurrency`` / ``asyncio.concurrency`` around a critical
section, ``rate_limit`` for limits with slot decay. Slots are leases that never leak."""
