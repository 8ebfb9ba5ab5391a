"""The container image the MESG engine builds from the Dockerfile, built and run for real.

``scripts/image`` builds it with buildah on a stand-in for the Dockerfile's base; these tests then
read its configuration, look at its files, and run it as the engine would (its USER, WORKDIR,
ENV, ENTRYPOINT + CMD, and MESG_*/PUSHER_* from the engine). `.ci/run` runs them together with
the end-to-end suite (tests/e2e/test_*tasks_e2e.py), whose stack then starts the image.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from mesg_local_engine.app import Application
from tests.support.container import IMAGE_VARIABLE, ContainerService
from tests.support.e2e import channel, run
from tests.support.image import BASE_IMAGE, RunConfig, added_size, mounted
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

IMAGE = os.environ.get(IMAGE_VARIABLE, "")
pytestmark = pytest.mark.skipif(
    not IMAGE, reason=f"{IMAGE_VARIABLE} is not set: `bash scripts/image` builds the image (.ci/run does)"
)
REPO = Path(__file__).resolve().parents[2]
#: What the project may add on top of the base image (the target set for the image).
SIZE_BUDGET = 60_000_000


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_configuration_runs_the_service_unprivileged_in_exec_form() -> None:
    config = RunConfig.of(IMAGE)
    uid, _, gid = config.user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, config.user
    assert config.argv == ["mesg-pusher"]  # exec form: the service is PID 1 and gets SIGTERM
    assert config.workdir == "/app"
    assert config.env["PYTHONUNBUFFERED"] == "1"


def test_the_project_adds_little_on_top_of_the_base() -> None:
    added = added_size(IMAGE, BASE_IMAGE)
    print(f"\nimage {IMAGE}: {added / 1e6:.1f} MB on top of {BASE_IMAGE}")
    assert 0 < added <= SIZE_BUDGET, f"{added / 1e6:.1f} MB added, budget {SIZE_BUDGET / 1e6:.0f} MB"


def test_nothing_but_the_service_is_added() -> None:
    """No source tree, tests, wheel, pip, pip cache, compiler or binutils; mesg.yml read-only."""
    root = mounted(IMAGE).rootfs
    for leftover in ("build", "dist", "tmp/dist", "root/.cache", "app/.env", "app/src", "app/tests"):
        assert not (root / leftover).exists(), leftover
    assert not list((root / "tmp").iterdir())
    for tool in ("gcc", "cc", "c++", "ld", "strip", "as"):
        assert not (root / "usr/bin" / tool).exists(), tool
    venv = root / "opt/mesg-pusher"
    assert not list(venv.glob("bin/pip*")) and not list(venv.glob("lib/python3*/site-packages/pip"))
    package = next(venv.glob("lib/python3*/site-packages/mesg_pusher"))
    assert not (package / "tests").exists() and not (package.parent / "tests").exists()
    # The service only: the local engine, the harness and the benchmarks stay in the repository.
    for elsewhere in ("harness", "local_engine", "demo.py", "bench.py"):
        assert not (package / elsewhere).exists(), elsewhere
    for elsewhere in ("mesg_local_engine", "benchmarks"):
        assert not (package.parent / elsewhere).exists(), elsewhere
    assert not (venv / "bin" / "mesg-local-engine").exists()
    # pip compiled the bytecode at build time: the service user could not write it at run time.
    assert list(package.glob("__pycache__/*.pyc"))
    definition = root / "app/mesg.yml"
    assert definition.read_bytes() == (REPO / "mesg.yml").read_bytes()
    assert (package / "mesg.yml").read_bytes() == (REPO / "mesg.yml").read_bytes()
    info = definition.stat()
    assert info.st_uid == 0 and not info.st_mode & 0o022


async def test_runs_as_its_own_user_with_the_engine_environment(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    """The module's stack is the image (so is the end-to-end suite's): checked from /proc."""
    service = stack.service
    assert isinstance(service, ContainerService)
    status = proc_status(service.pid)
    uid, gid = service.container.ids()
    assert uid != 0
    assert status["Uid"].split() == [str(uid)] * 4 and status["Gid"].split() == [str(gid)] * 4
    assert status["Groups"] == ""  # no supplementary groups (root's would leak otherwise)
    assert Path(f"/proc/{service.pid}/root").resolve() == service.container.rootfs.resolve()
    assert Path(f"/proc/{service.pid}/cwd").resolve() == (service.container.rootfs / "app").resolve()
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{service.pid}/environ").read_text().split("\0") if item
    )
    assert environ["MESG_ENDPOINT"] == stack.engine.endpoint and environ["MESG_TOKEN"]
    assert environ["PUSHER_APP_ID"] == stack.soketi.pusher_env()["PUSHER_APP_ID"]
    assert environ["PATH"].startswith("/opt/mesg-pusher/bin:")
    assert not {"HOME", "VIRTUAL_ENV", "PYTHONPATH"} & environ.keys(), "host variables leaked in"
    # and it serves: a task round trip through the engine and Pusher
    result = await run(app, pusher_instance, "trigger", {"channel": channel(), "name": "n", "data": {}})
    assert result.ok, result.error


async def test_sigterm_drains_in_flight_executions_and_exits_0(soketi: Soketi) -> None:
    slow = await TcpProxy(soketi.port, delay=1.0).start()  # executions are in flight at SIGTERM
    settings = {"PUSHER_PORT": str(slow.port)}
    try:
        with running_stack(soketi, env=settings, service_env={"MESG_PUSHER_GRACE_PERIOD": "10"}) as running:
            assert isinstance(running.service, ContainerService)
            async with Application.connect(running.engine.endpoint) as application:
                instance = await application.resolve("com.mesg.pusher")
                target = channel("term")
                executions = asyncio.gather(
                    *(
                        run(
                            application,
                            instance,
                            "trigger",
                            {"channel": target, "name": "n", "data": {"i": i}},
                        )
                        for i in range(3)
                    )
                )
                await asyncio.sleep(0.5)  # the 3 are now held by the slow Pusher
                running.service.signal(signal.SIGTERM)
                results = await executions
                code = await asyncio.to_thread(running.service.wait, 15)
            assert [r.status for r in results] == ["Completed"] * 3, [r.error for r in results]
            assert code == 0, running.service.log()[-2000:]
            assert "stopped: 3 completed" in running.service.log()
    finally:
        await slow.stop()
