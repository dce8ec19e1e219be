"""Start Debian's ``redis-server`` on a free loopback port for the tests, and stop it after.

The server runs in the foreground in its own temporary directory with append-only
persistence fsync'd on every write (``appendfsync always``), which is what the live path's
"never lost" promise needs, and no RDB snapshots. ``kill`` (SIGKILL) and ``start`` again on
the same directory and port replay the append-only file, as a crashed production server would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

BINARY = "redis-server"
INSTALL_HINT = (
    "redis-server (Debian's package) is not installed; `make test` installs it through "
    "`make system-deps` (or run: apt-get install redis-server)."
)
START_TIMEOUT_S = 10.0


def redis_server_path() -> str | None:
    """The redis-server binary, if installed."""
    return shutil.which(BINARY) or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process bound to 127.0.0.1, its data in ``directory``."""

    def __init__(self, directory: Path, *, port: int | None = None) -> None:
        binary = redis_server_path()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server (replaying its append-only file if any); return once PING answers."""
        for _attempt in range(3):
            log = (self.directory / "redis.log").open("ab")
            options = {
                "bind": "127.0.0.1",
                "port": str(self.port),
                "dir": str(self.directory),
                "appendonly": "yes",
                "appendfsync": "always",
                "save": "",
                "daemonize": "no",
                "protected-mode": "yes",
            }
            args = [a for name, value in options.items() for a in (f"--{name}", value)]
            self.process = subprocess.Popen(
                [self.binary, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            if self._wait_ready():
                return self
            self.stop()
            # Another process may have taken the port between choosing and binding it.
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _wait_ready(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no shutdown, no final save."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
