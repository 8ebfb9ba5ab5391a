"""Child processes of a local setup: the local engine and the service, each stopped exactly."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mesg_local_engine.deployment import Deployment
from tests.support.checkout import MESG_YML


class ProcessError(RuntimeError):
    """A child process did not start, or did not stop as asked."""


class Child:
    """One child process whose output goes to a file (a pipe could fill up and stall it)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = Path(tempfile.mkstemp(prefix=f"mesg-pusher-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, stdout: int | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=stdout if stdout is not None else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} still running after {timeout:g} s") from None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment, minus anything that would configure a child behind our back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "MESG_")) and k != "LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class EngineProcess(Child):
    """``python -m mesg_local_engine`` on a loopback port; knows what its services are told.

    It deploys ``mesg_yml`` (default: the checkout's, whatever the working directory).
    ``generation`` and ``runners`` as the engine's ``--generation`` and ``--runners``; once
    started, ``deployment`` holds its READY line (hashes, runners, their signatures).
    """

    def __init__(
        self,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        mesg_yml: Path | None = None,
        extra_args: Sequence[str] = (),
        state_file: Path | str | None = None,
        generation: str = "g1",
        runners: int = 1,
    ) -> None:
        self.instance_env = dict(env or {})
        self.state_file = state_file
        argv = [sys.executable, "-m", "mesg_local_engine", "--port", str(port)]
        argv += ["--mesg-yml", str(mesg_yml or MESG_YML)]
        if generation != "g1":
            argv += ["--generation", generation, "--runners", str(runners)]
        if state_file is not None:
            argv += ["--state-file", str(state_file)]
        for key, value in self.instance_env.items():
            argv += ["--env", f"{key}={value}"]
        super().__init__("engine", [*argv, *extra_args], python_env())
        self.endpoint = ""
        self.token = ""
        self.port = port
        self.deployment: Deployment | None = None

    def mesg_env(self, runner: int = 0) -> dict[str, str]:
        """The ``MESG_*`` variables of the service process that is runner ``runner``."""
        if self.deployment is None:
            raise ProcessError("the engine has not started yet: nothing to tell a service")
        return self.deployment.mesg_env(runner)

    @property
    def runner_count(self) -> int:
        """Service processes this engine's instance runs as: one per runner (one under G1)."""
        return max(1, len(self.deployment.runners)) if self.deployment is not None else 1

    def start(self, timeout: float = 20.0) -> EngineProcess:  # type: ignore[override]
        super().start(stdout=subprocess.PIPE)
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("READY "):
                        self.deployment = Deployment.from_ready_line(line)
                        self.endpoint, self.token = self.deployment.endpoint, self.deployment.token
                        self.port = int(self.endpoint.rsplit(":", 1)[1])
                        return self
            elif self.proc.poll() is not None:
                break
        self.kill()
        raise ProcessError(f"local engine did not become ready:\n{self.log()[-3000:]}")

    def restart(self, timeout: float = 20.0) -> EngineProcess:
        """Start again on the same port, with the same instance and runners (G3: new tokens)."""
        before = self.deployment
        self.argv[self.argv.index("--port") + 1] = str(self.port)
        self.start(timeout)
        after = self.deployment
        if before is not None and after is not None:
            if after.token != before.token:
                raise ProcessError("restarted engine has another instance hash")
            if [r.hash for r in after.runners] != [r.hash for r in before.runners]:
                raise ProcessError("restarted engine has other runners")
        return self


class ServiceProcess(Child):
    """The real service, started as the engine starts it: ``python -m mesg_pusher``."""

    def __init__(
        self,
        engine: EngineProcess,
        env: Mapping[str, str] | None = None,
        module: str = "mesg_pusher",
        argv: Sequence[str] | None = None,
        runner: int = 0,
    ) -> None:
        """``python -m module``, or ``argv`` for a service that is not ours (the bench's baseline).

        It is runner number ``runner`` of the engine's instance (G2, G3): its own runner hash
        and signature. ``env`` comes last, so a test may replace an engine variable.
        """
        variables = {**engine.instance_env, **(env or {})}
        name = module.rsplit(".", 1)[-1] if argv is None else Path(argv[-1]).stem
        super().__init__(
            name if engine.runner_count == 1 else f"{name}-runner{runner}",
            [sys.executable, "-m", module] if argv is None else argv,
            python_env({**engine.mesg_env(runner), **variables}),
        )
        self.runner = runner

    def wait_for_log(self, text: str, timeout: float = 20.0, after: int = 0) -> None:
        """Wait until ``text`` appears in the log after offset ``after`` (or the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[after:]:
                return
            if not self.running:
                raise ProcessError(
                    f"service exited ({self.proc and self.proc.returncode}):\n{self.log()[-3000:]}"
                )
            time.sleep(0.05)
        raise ProcessError(f"service log never showed {text!r}:\n{self.log()[-3000:]}")

    def start_ready(self, timeout: float = 20.0) -> ServiceProcess:
        offset = len(self.log())
        self.start()
        self.wait_for_log("ready: subscribed", timeout, after=offset)
        return self


def start_services(
    engine: EngineProcess,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    factory: Callable[..., ServiceProcess] = ServiceProcess,
) -> tuple[ServiceProcess, ...]:
    """One service process per runner of the engine's instance, all subscribed when it returns.

    They start together and are then awaited, so N runners cost about one start, not N.
    ``factory(engine, env=..., runner=...)`` makes each (the tests run the image this way).
    """
    services = tuple(factory(engine, env=env, runner=index) for index in range(engine.runner_count))
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_for_log("ready: subscribed", timeout)
    except BaseException:
        terminate_all(services)
        raise
    return services


def terminate_all(children: Sequence[Child]) -> None:
    """Stop children in reverse start order; used by fixtures' teardown."""
    for child in reversed(children):
        try:
            child.stop()
        except Exception:
            child.kill()


__all__ = [
    "Child",
    "EngineProcess",
    "ProcessError",
    "ServiceProcess",
    "python_env",
    "signal",
    "start_services",
    "terminate_all",
]
