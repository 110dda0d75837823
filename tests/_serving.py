"""Waiting for a ``finetec-serve`` child process to serve, for the server's tests."""

from __future__ import annotations

import subprocess
import threading
import time


def wait_serving(server: subprocess.Popen, timeout: float = 180.0, drain: bool = False) -> None:
    """Until the server says it listens (both sockets bound), then a moment for a
    subscriber's subscription to reach it; ``drain``: keep reading its stderr after."""
    end = time.time() + timeout
    while time.time() < end:
        line = server.stderr.readline()
        if not line and server.poll() is not None:
            raise AssertionError(f"finetec-serve ended: {server.returncode}")
        if "serving window messages" in line:
            if drain:
                threading.Thread(target=server.stderr.read, daemon=True).start()
            time.sleep(1.0)
            return
    raise AssertionError("finetec-serve did not start")
