"""Run a real soketi server (Pusher Channels-compatible) for the tests, the demo and the bench.

Why: Pusher itself is unreachable from test machines; soketi speaks the same HTTP API and
WebSocket protocol. It is installed by `npm ci` at the repo root: package.json pins it and
patches/ fixes its HTTP handler so error statuses (401, 413, ...) are real status lines.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.checkout import NODE_MODULES


def _find_soketi() -> Path:
    """``$SOKETI_BIN``, else the checkout's ``node_modules/.bin/soketi`` (``npm ci`` puts it there)."""
    if os.environ.get("SOKETI_BIN"):
        return Path(os.environ["SOKETI_BIN"])
    return NODE_MODULES / ".bin" / "soketi"


HOST = "127.0.0.1"


class SoketiError(RuntimeError):
    """soketi is missing, did not come up, or the port is taken."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    # soketi listens with SO_REUSEPORT, so a second instance on a busy port would start
    # "fine" and share it; check first. SO_REUSEADDR tolerates TIME_WAIT left by a restart.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class SoketiApp:
    """Credentials of soketi's default app.

    The id must be numeric (the Python `pusher` SDK rejects others); key and secret must not
    be: soketi JSON-parses env values, so "123" would become a number and never match.
    """

    app_id: str = "100001"
    key: str = "test-app-key"
    secret: str = "test-app-secret"


class Soketi:
    """One soketi process on loopback; `with Soketi() as s:` or explicit start()/stop().

    `port=None` picks a free port at the first start(); restarting keeps the same port.
    """

    host = HOST

    def __init__(
        self,
        app: SoketiApp | None = None,
        *,
        port: int | None = None,
        client_messages: bool = True,
        user_authentication: bool = False,
        webhooks: Sequence[Mapping[str, Any]] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.app = app or SoketiApp()
        self._port = port
        self.client_messages = client_messages
        self.user_authentication = user_authentication
        self.webhooks = list(webhooks) if webhooks is not None else None
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._last_log = ""

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise SoketiError("soketi has no port yet: call start() first")
        return self._port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def pusher_env(self) -> dict[str, str]:
        """The PUSHER_* variables that point the service at this server over plain HTTP."""
        return {
            "PUSHER_APP_ID": self.app.app_id,
            "PUSHER_APP_KEY": self.app.key,
            "PUSHER_APP_SECRET": self.app.secret,
            "PUSHER_HOST": self.host,
            "PUSHER_PORT": str(self.port),
            "PUSHER_USE_TLS": "false",
        }

    def ws_url(self, key: str | None = None) -> str:
        """Pusher protocol-7 WebSocket URL for `key` (default: this app's key)."""
        key = self.app.key if key is None else key
        return f"ws://{self.host}:{self.port}/app/{key}?protocol=7&client=py&version=1.0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log(self) -> str:
        """Everything soketi printed so far (or in its last run, once stopped)."""
        if self._log_path is not None and self._log_path.exists():
            return self._log_path.read_text(errors="replace")
        return self._last_log

    # -- lifecycle -------------------------------------------------------------------------
    def _env(self, metrics_port: int) -> dict[str, str]:
        # Drop inherited SOKETI_* so the caller's environment cannot reconfigure the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOKETI_")}
        env.update(
            SOKETI_HOST=self.host,
            SOKETI_PORT=str(self.port),
            SOKETI_METRICS_HOST=self.host,
            SOKETI_METRICS_SERVER_PORT=str(metrics_port),
            SOKETI_DEFAULT_APP_ID=self.app.app_id,
            SOKETI_DEFAULT_APP_KEY=self.app.key,
            SOKETI_DEFAULT_APP_SECRET=self.app.secret,
            SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=json.dumps(self.client_messages),
            SOKETI_DEFAULT_APP_USER_AUTHENTICATION=json.dumps(self.user_authentication),
            # Default is 3 s of waiting on every stop; tests restart servers often.
            SOKETI_SHUTDOWN_GRACE_PERIOD="0",
        )
        if self.webhooks is not None:
            env["SOKETI_DEFAULT_APP_WEBHOOKS"] = json.dumps(self.webhooks)
        env.update(self.extra_env)
        return env

    def start(self) -> Soketi:
        """Start soketi and wait until `GET /` answers OK; raise SoketiError with its log if not."""
        if self.running:
            return self
        soketi_bin = _find_soketi()
        if not soketi_bin.exists():
            raise SoketiError(
                f"{soketi_bin} is missing: run `npm ci` at the repository root to install soketi"
            )
        if self._port is None:
            self._port = free_port()
        elif not _port_is_free(self._port):
            raise SoketiError(f"port {self._port} on {self.host} is already in use")
        # Private cwd: soketi loads a `.env` from its working directory.
        self._workdir = tempfile.TemporaryDirectory(prefix="soketi-")
        self._log_path = Path(self._workdir.name) / "soketi.log"
        # A file, not a pipe: nobody reads a pipe during the tests and a full one blocks soketi.
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(soketi_bin), "start"],
                cwd=self._workdir.name,
                env=self._env(free_port()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)  # never outlive the test process, even if stop() is forgotten
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _ready_opener(self) -> urllib.request.OpenerDirector:
        """How ``GET /`` is asked while waiting for the server (subclasses serving TLS change it)."""
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy

    def _wait_ready(self) -> None:
        opener = self._ready_opener()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise SoketiError(f"soketi exited with {self._proc.returncode}:\n{self._tail()}")
            # The log line guards against answering for another server sharing the port.
            if "Server is up and running" in self.log():
                try:
                    with opener.open(self.http_url + "/", timeout=1.0) as resp:
                        if resp.status == 200 and resp.read().strip() == b"OK":
                            return
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise SoketiError(
                    f"soketi not ready on {self.http_url} after {self.startup_timeout}s:\n" + self._tail()
                )
            time.sleep(0.05)

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process this object started: SIGTERM, wait, then SIGKILL."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._workdir is not None:
            self._last_log = self.log()
            self._workdir.cleanup()
            self._workdir = None
            self._log_path = None

    def __enter__(self) -> Soketi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"{self.http_url}, pid={self.pid}" if self.running else "stopped"
        return f"Soketi({state}, app_id={self.app.app_id!r})"
