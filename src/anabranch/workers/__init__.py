"""Workers: processes that take their pool's due runs and run each in a subprocess."""
