"""What the browser and HTTP tests share: a free loopback port, Debian's Chromium, where screenshots go.

The `browser` and `page` fixtures live in conftest.py; `page` opens the `app_url` fixture of the test module.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("GLYPH_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
# The resolver rule keeps Chromium fully offline; any non-loopback request would fail loudly.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[str]:
    """An ASGI app served by uvicorn in a thread on a free local port, for the block: its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
