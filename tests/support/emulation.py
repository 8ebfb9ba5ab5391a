"""Drive engine.js, the independent G2/G3 engine emulation, from pytest.

Why a JSON-lines channel on stdin/stdout: the tests play the engine's other side (applications
creating executions, an operator restarting the engine) without sharing any code or protos with
the service; everything the engine saw (registrations, stream filters, result calls, events) is
read back with ``state()``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.checkout import ROOT
from tests.support.installed import InstalledService

#: The emulation itself, with the protos it loads, lives with the conformance tests.
ENGINE_JS = ROOT / "tests" / "conformance" / "engine.js"

State = dict[str, Any]


class EmulationError(RuntimeError):
    """The emulated engine refused a command, died, or a condition never held."""


@dataclass(frozen=True)
class Node:
    """One engine node: its endpoint, the runner it hosts, and the env it gives the service."""

    index: int
    endpoint: str
    runner: str
    env: dict[str, str]
    rogue_env: dict[str, str]  # the same, with a signature from a key the engine does not trust


class EmulatedEngine:
    """``node engine.js`` with ``nodes`` nodes of one instance; stopped exactly by ``stop()``."""

    def __init__(self, generation: str, nodes: int, definition: Path) -> None:
        self.generation = generation
        self.log_path = Path(tempfile.mkstemp(prefix=f"conformance-engine-{generation}-", suffix=".log")[1])
        self._argv = [
            "node",
            str(ENGINE_JS),
            "--generation",
            generation,
            "--nodes",
            str(nodes),
            "--definition",
            str(definition),
        ]
        self._proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._ready: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self.nodes: list[Node] = []
        self.instance = ""

    def start(self, timeout: float = 30.0) -> EmulatedEngine:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv,
                cwd=ROOT,  # node_modules/@grpc lives at the repository root
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        threading.Thread(target=self._read, name="engine.js stdout", daemon=True).start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready is not None or not self.running, timeout):
                seen = self.log()
                self.stop()
                raise EmulationError(f"engine.js not ready after {timeout:g} s:\n{seen}")
        if self._ready is None:
            raise EmulationError(f"engine.js exited:\n{self.log()}")
        self.instance = self._ready["instance"]
        self.nodes = [
            Node(n["index"], n["endpoint"], n["runner"], n["env"], rogue)
            for n, rogue in zip(self._ready["nodes"], self._ready["rogue_env"], strict=True)
        ]
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "ready" in message:
                    self._ready = message["ready"]
                else:
                    self._replies[message["id"]] = message
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def call(self, op: str, timeout: float = 30.0, **arguments: Any) -> Any:
        """Send one command, return its answer; raise EmulationError with the engine's message."""
        assert self._proc is not None and self._proc.stdin is not None
        ident = next(self._ids)
        with self._write_lock:
            self._proc.stdin.write(json.dumps({"id": ident, "op": op, **arguments}) + "\n")
            self._proc.stdin.flush()
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._replies or not self.running, timeout):
                raise EmulationError(f"no answer to {op} after {timeout:g} s")
            if ident not in self._replies:
                raise EmulationError(f"engine.js died during {op}:\n{self.log()}")
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise EmulationError(reply["error"])
        return reply["ok"]

    # -- what applications and operators do ---------------------------------------------------
    def create(self, task: str, inputs: dict[str, Any], executor: int | None = None) -> str:
        """An application creates an execution; the executor is random among the nodes' runners
        unless named. Returns its base58 hash."""
        hash_: str = self.call("create", task=task, inputs=inputs, executor=executor)["hash"]
        return hash_

    def create_many(self, items: list[dict[str, Any]]) -> list[str]:
        hashes: list[str] = self.call("create_many", items=items)["hashes"]
        return hashes

    def state(self) -> State:
        state: State = self.call("state")
        return state

    def wait_for(self, condition: Callable[[State], Any], what: str, timeout: float = 30.0) -> Any:
        """Poll the engine's state until ``condition`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            found = condition(state)
            if found:
                return found
            if time.monotonic() > deadline:
                raise EmulationError(f"{what}: not after {timeout:g} s; engine state:\n{_summary(state)}")
            time.sleep(0.1)

    def execution(self, hash_: str) -> dict[str, Any]:
        return by_hash(self.state(), hash_)

    def wait_finished(self, hashes: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every execution in ``hashes`` is Completed or Failed; return them by hash."""
        wanted = set(hashes)

        def finished(state: State) -> dict[str, dict[str, Any]] | None:
            done = {e["hash"]: e for e in state["executions"] if e["hash"] in wanted}
            if all(e["status"] in ("Completed", "Failed") for e in done.values()) and len(done) == len(
                wanted
            ):
                return done
            return None

        result: dict[str, dict[str, Any]] = self.wait_for(
            finished, f"{len(wanted)} executions finished", timeout
        )
        return result

    def wait_subscribed(self, node: int, after: float = 0.0, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for an active execution stream on ``node`` opened after ``after`` (engine ms)."""

        def active(state: State) -> dict[str, Any] | None:
            for sub in state["subscriptions"]:
                if sub["node"] == node and sub["active"] and sub["at"] > after:
                    return dict(sub)
            return None

        found: dict[str, Any] = self.wait_for(active, f"service subscribed on node {node}", timeout)
        return found

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # engine.js exits when its control channel closes
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.log_path.unlink(missing_ok=True)


def by_hash(state: State, hash_: str) -> dict[str, Any]:
    for execution in state["executions"]:
        if execution["hash"] == hash_:
            return dict(execution)
    raise EmulationError(f"execution {hash_} unknown to the engine")


def now_ms() -> float:
    """The engine's clock (ms since the epoch), to compare with ``at`` in its state."""
    return time.time() * 1000


def _summary(state: State) -> str:
    statuses: dict[str, int] = {}
    for e in state["executions"]:
        statuses[e["status"]] = statuses.get(e["status"], 0) + 1
    return json.dumps(
        {
            "executions": statuses,
            "registers": state["registers"][-5:],
            "subscriptions": state["subscriptions"][-5:],
            "orphan_attempts": state["orphan_attempts"][-5:],
            "refused": [a for e in state["executions"] for a in e["attempts"] if "error" in a][-5:],
        },
        indent=1,
    )


#: ``engine_factory("g3", nodes=2)`` and ``service_factory(...)`` (tests/conformance/conftest.py).
EngineFactory = Callable[..., EmulatedEngine]
ServiceFactory = Callable[..., InstalledService]
