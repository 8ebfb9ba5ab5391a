"""The local engine's own mesg.yml compiler: any service's file, as mesg-cli compiles it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from mesg_local_engine import Application, start_engine
from mesg_local_engine._proto.mesg.types.service_pb2 import Service
from mesg_local_engine.definition import DefinitionError, load_service
from mesg_pusher.definition import load_definition
from tests.support.definitions import ANCHORS, MALFORMED

ROOT = Path(__file__).resolve().parents[2]

ECHO = """\
name: echo
sid: com.example.echo
description: Not this repository's service.
repository: https://example.com/echo
configuration:
  env: [GREETING=hello, PORT=8080]
  ports: ["8080"]
  volumes: [/data]
  volumesFrom: [db]
  args: [--verbose]
  command: 8080
dependencies:
  db:
    image: postgres
    env: [POSTGRES_PASSWORD=x]
    ports: ["5432"]
tasks:
  say:
    name: Say
    inputs:
      text: {type: String}
      times: {type: Number, optional: true}
      tags: {type: String, repeated: true, optional: true}
      meta: {type: Object, optional: true, object: {lang: {type: String}}}
    outputs:
      said: {type: String}
events:
  heard:
    data:
      text: {type: Any}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mesg.yml"
    path.write_text(text)
    return path


def test_any_service_compiles_field_by_field(tmp_path: Path) -> None:
    request = load_service(write(tmp_path, ECHO))
    assert (request.name, request.sid, request.repository) == (
        "echo",
        "com.example.echo",
        "https://example.com/echo",
    )
    config = request.configuration
    assert list(config.env) == ["GREETING=hello", "PORT=8080"]
    assert (list(config.ports), list(config.volumes), list(config.volumesFrom)) == (
        ["8080"],
        ["/data"],
        ["db"],
    )
    assert (list(config.args), config.command) == (["--verbose"], "8080")  # a number read as text
    (db,) = request.dependencies
    assert (db.key, db.image, list(db.env), list(db.ports)) == (
        "db",
        "postgres",
        ["POSTGRES_PASSWORD=x"],
        ["5432"],
    )
    (say,) = request.tasks
    assert (say.key, say.name) == ("say", "Say")
    assert [(p.key, p.type, p.optional, p.repeated) for p in say.inputs] == [
        ("text", "String", False, False),
        ("times", "Number", True, False),
        ("tags", "String", True, True),
        ("meta", "Object", True, False),
    ]
    assert list(say.inputs[3].object) == [Service.Parameter(key="lang", type="String")]
    assert [(event.key, [p.key for p in event.data]) for event in request.events] == [("heard", ["text"])]


async def test_the_engine_deploys_any_service(tmp_path: Path) -> None:
    engine = await start_engine(definition=write(tmp_path, ECHO), env=["GREETING=hi"])
    try:
        assert engine.env == ("GREETING=hi", "PORT=8080")
        async with Application.connect(engine.endpoint) as app:
            assert await app.resolve("com.example.echo") == engine.instance_hash
            with pytest.raises(
                Exception, match='inputs of task "say" are invalid: value of "text" is required'
            ):
                await app.execute_task(engine.instance_hash, "say", {})
            created = await app.execute_task(engine.instance_hash, "say", {"text": "x"})
            await app.update_execution(created, {"said": "x"})
            assert (await app.get_execution(created)).outputs == {"said": "x"}
    finally:
        await engine.stop(0)


async def test_by_default_the_working_directory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``mesg-cli service:dev`` run in a service's folder."""
    write(tmp_path, ECHO)
    monkeypatch.chdir(tmp_path)
    engine = await start_engine()
    try:
        assert engine.service.sid == "com.example.echo"
    finally:
        await engine.stop(0)


@pytest.mark.parametrize(
    "text", [(ROOT / "mesg.yml").read_text(), ECHO, ANCHORS], ids=["mesg.yml", "echo", "anchors"]
)
def test_the_engine_reads_a_file_as_the_service_does(tmp_path: Path, text: str) -> None:
    """The engine's compiler and the service's loader are two readings of one file: same shape,
    same file order (anchors and merge keys resolved alike)."""
    path = write(tmp_path, text)
    request, definition = load_service(path), load_definition(path)

    def shape(params: Iterable[Any]) -> list[tuple[Any, ...]]:
        return [(p.key, p.type, p.optional, p.repeated, tuple(shape(p.object))) for p in params]

    assert (request.name, request.sid) == (definition.name, definition.sid)
    assert list(request.configuration.env) == list(definition.configuration.env)
    assert [t.key for t in request.tasks] == list(definition.tasks)
    for task in request.tasks:
        mine = definition.tasks[task.key]
        assert shape(task.inputs) == shape(mine.inputs) and shape(task.outputs) == shape(mine.outputs)
    assert [e.key for e in request.events] == list(definition.events)
    for event in request.events:
        assert shape(event.data) == shape(definition.events[event.key].data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        *MALFORMED,  # the service's loader says the same of these
        (
            "name: x\ntasks:\n  t:\n    inputs:\n      a: {name: A}\n",
            "tasks.t.inputs.a.type: None is not one of",
        ),
        ("name: x\ntasks:\n  1: {}\n", "tasks: key 1 must be a non-empty string"),
        ("name: x\nconfiguration:\n  env: [{a: 1}]\n", "configuration.env[0]: expected a string"),
        ("name: {a: 1}\n", "name: expected a string"),
    ],
)
def test_malformed_files_are_refused_with_the_place(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=r"mesg\.yml") as info:
        load_service(write(tmp_path, text))
    assert message in str(info.value)


def test_anchors_and_merge_keys_keep_file_order(tmp_path: Path) -> None:
    a, b = load_service(write(tmp_path, ANCHORS)).tasks
    assert [p.key for p in b.inputs] == ["one", "two", "four"]
    assert list(b.inputs[2].object) == [Service.Parameter(key="x", type="String")]
    assert b.outputs == a.outputs


def test_the_same_file_gives_the_same_service_hash(tmp_path: Path) -> None:
    """An empty configuration is sent all the same, as mesg-cli does: the hash depends on the file only."""
    first = load_service(write(tmp_path, "name: x\n"))
    assert first.HasField("configuration")
    assert first.SerializeToString(deterministic=True) == load_service(
        tmp_path / "mesg.yml"
    ).SerializeToString(deterministic=True)
