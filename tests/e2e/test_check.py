"""``mesg-pusher check``: settings shown masked, and each problem named, against real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_pusher.hash_text import b58
from tests.support.commands import mesg_pusher
from tests.support.processes import EngineProcess
from tests.support.soketi import Soketi, free_port

WRONG_SECRET = "Wr0ng-Secret-For-Check"


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    process = EngineProcess().start()
    try:
        yield process
    finally:
        process.stop()


def failures(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("FAIL")]


def test_all_good_with_the_engine(soketi: Soketi, engine: EngineProcess, tmp_path: Path) -> None:
    env = {**soketi.pusher_env(), "MESG_ENDPOINT": engine.endpoint, "MESG_TOKEN": engine.token}
    ran = mesg_pusher("check", env=env, cwd=tmp_path)
    assert ran.code == 0, ran.output
    assert failures(ran.stdout) == []
    assert f"ok   Pusher at http://{soketi.host}:{soketi.port}: channels answered" in ran.stdout
    assert f"ok   engine at {engine.endpoint}: gRPC connection ready" in ran.stdout
    assert soketi.app.secret not in ran.output
    assert "PUSHER_APP_SECRET" in ran.stdout and "***" in ran.stdout


def test_wrong_secret_is_named(soketi: Soketi, tmp_path: Path) -> None:
    ran = mesg_pusher("check", env={**soketi.pusher_env(), "PUSHER_APP_SECRET": WRONG_SECRET}, cwd=tmp_path)
    assert ran.code == 1, ran.output
    [line] = failures(ran.stdout)
    assert "wrong app secret or key (PUSHER_APP_SECRET, PUSHER_APP_KEY)" in line and "HTTP 401" in line, line
    assert WRONG_SECRET not in ran.output


def test_unreachable_host_is_named(soketi: Soketi, tmp_path: Path) -> None:
    env = {**soketi.pusher_env(), "PUSHER_PORT": str(free_port()), "PUSHER_TIMEOUT": "1000"}
    ran = mesg_pusher("check", env=env, cwd=tmp_path)
    assert ran.code == 1, ran.output
    [line] = failures(ran.stdout)
    assert "Pusher unreachable" in line and "connection refused" in line, line


def test_missing_variable_is_named(soketi: Soketi, tmp_path: Path) -> None:
    env = {k: v for k, v in soketi.pusher_env().items() if k != "PUSHER_APP_SECRET"}
    ran = mesg_pusher("check", env=env, cwd=tmp_path)
    assert ran.code == 1, ran.output
    [line] = failures(ran.stdout)
    assert "Pusher credentials missing: set PUSHER_APP_SECRET" in line, line


def test_unreachable_engine_is_named(soketi: Soketi, tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**soketi.pusher_env(), "MESG_ENDPOINT": endpoint, "MESG_TOKEN": b58(bytes(32))}
    ran = mesg_pusher("check", env=env, cwd=tmp_path)
    assert ran.code == 1, ran.output
    [line] = failures(ran.stdout)
    assert f"engine unreachable: no gRPC connection to MESG_ENDPOINT {endpoint}" in line, line


def test_pusher_url_from_dotenv_is_masked(soketi: Soketi, tmp_path: Path) -> None:
    app = soketi.app
    (tmp_path / ".env").write_text(
        f"PUSHER_URL=http://{app.key}:{app.secret}@{soketi.host}:{soketi.port}/apps/{app.app_id}\n"
        "PUSHER_SECRET=typo-of-the-secret\n"
    )
    ran = mesg_pusher("check", cwd=tmp_path)
    assert ran.code == 0, ran.output
    assert f"http://***@{soketi.host}:{soketi.port}/apps/{app.app_id}" in ran.stdout
    assert ".env" in next(line for line in ran.stdout.splitlines() if "PUSHER_URL" in line)
    assert "PUSHER_SECRET is not a variable mesg-pusher reads; did you mean PUSHER_APP_SECRET?" in ran.stdout
    assert app.secret not in ran.output and "typo-of-the-secret" not in ran.output


def test_bad_service_setting_is_named(soketi: Soketi, tmp_path: Path) -> None:
    ran = mesg_pusher("check", env={**soketi.pusher_env(), "LOG_FORMAT": "xml"}, cwd=tmp_path)
    assert ran.code == 1, ran.output
    assert failures(ran.stdout) == ["FAIL LOG_FORMAT: variable LOG_FORMAT must be text or json, not 'xml'"]
