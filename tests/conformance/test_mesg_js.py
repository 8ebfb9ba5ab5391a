"""npm mesg-js 5.0.0 — a client nobody here wrote — against our protos, local engine and service."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from tests.support.pusher_ws import PusherWS
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
MESG_JS = ROOT / "node_modules" / "mesg-js" / "lib"
OURS = (
    "mesg/protobuf/struct.proto",
    "mesg/types/execution.proto",
    "mesg/types/event.proto",
    "mesg/types/instance.proto",
    "mesg/types/service.proto",
    "mesg/api/execution.proto",
    "mesg/api/event.proto",
    "mesg/api/service.proto",
    "mesg/api/instance.proto",
)
# What engines v0.17+ (G2, G3) added to these files; mesg-js 5 speaks v0.16 and has none of it.
LATER_FIELDS = {".mesg.types.Execution": range(13, 20), ".mesg.api.StreamExecutionRequest.Filter": range(5, 6)}
LATER_MESSAGES = {".mesg.types.Execution.Emitter"}


async def test_mesg_js_resolves_and_executes_through_our_engine(stack: Stack) -> None:
    channel = "mesg-js-check"
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(channel)
        node = await asyncio.create_subprocess_exec(
            "node",
            str(Path(__file__).with_name("mesg_js_app.js")),
            stack.engine.endpoint,
            channel,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        out, err = await asyncio.wait_for(node.communicate(), 60)
        assert node.returncode == 0, err.decode()
        results = json.loads(out)
        event = await ws.next_event(channel=channel, event="from-mesg-js")
    assert results["trigger"] == {"status": 3, "outputs": {"message": "sent"}}  # status 3 is Completed
    assert results["channel"]["outputs"] == {"occupied": True, "subscription_count": 1}
    assert "channel names may only contain" in results["bad"]["error"]
    assert event["data"] == {"hello": "world", "n": 2}


def _descriptors(include: Path, files: list[str], extra: list[str]) -> dict[str, object]:
    out = Path(tempfile.mkdtemp()) / "descriptors.bin"
    grpc_include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{include}",
            *[f"-I{e}" for e in extra],
            f"-I{grpc_include}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *files,
        ]
    )
    assert code == 0, f"protoc failed on {include}"
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    found: dict[str, object] = {}

    def messages(prefix: str, items) -> None:  # type: ignore[no-untyped-def]
        for message in items:
            name = f"{prefix}.{message.name}"
            found[name] = sorted((f.name, f.number, f.type, f.label, f.type_name) for f in message.field)
            messages(name, message.nested_type)
            for enum in message.enum_type:
                found[f"{name}.{enum.name}"] = sorted((v.name, v.number) for v in enum.value)

    for file in fds.file:
        messages(f".{file.package}", file.message_type)
        for enum in file.enum_type:
            found[f".{file.package}.{enum.name}"] = sorted((v.name, v.number) for v in enum.value)
        for service in file.service:
            for method in service.method:
                found[f"/{file.package}.{service.name}/{method.name}"] = (
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                )
    return found


@pytest.mark.skipif(not MESG_JS.exists(), reason="npm ci installs mesg-js")
def test_our_protos_match_what_mesg_js_ships() -> None:
    ours = _descriptors(ROOT / "protos", list(OURS), [])
    files = [f"protobuf/api/{name}.proto" for name in ("execution", "event", "service", "instance")]
    theirs = _descriptors(MESG_JS, files, [])
    ours_mesg = {
        k: [f for f in v if f[1] not in LATER_FIELDS[k]] if k in LATER_FIELDS else v  # type: ignore[attr-defined]
        for k, v in ours.items()
        if (".mesg." in k or k.startswith("/mesg.")) and k not in LATER_MESSAGES
    }
    missing = sorted(k for k in ours_mesg if k not in theirs)
    assert not missing, f"ours but not in mesg-js: {missing}"
    differ = sorted(k for k in ours_mesg if ours_mesg[k] != theirs[k])
    assert not differ, {k: (ours_mesg[k], theirs[k]) for k in differ}
