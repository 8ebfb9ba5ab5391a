"""engine.js refuses what the engine refuses: the checks of test_generations rest on it.

Raw gRPC calls with hand-encoded messages (no generated code, ours or anyone's), so a lenient
emulation (any signature accepted, tokens never forgotten) cannot pass unnoticed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import grpc
import pytest

from mesg_pusher.hash_text import from_b58
from tests.support.emulation import EmulatedEngine, EngineFactory

CURVE_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
REGISTER = "/mesg.grpc.orchestrator.Runner/Register"
RESULT = "/mesg.grpc.runner.Runner/Result"


def field(number: int, value: bytes) -> bytes:
    """One length-delimited protobuf field (every value here is shorter than 128 bytes)."""
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def register_request(env: dict[str, str]) -> bytes:
    return field(1, from_b58(env["MESG_SERVICE_HASH"])) + field(2, from_b58(env["MESG_ENV_HASH"]))


def token_of(response: bytes) -> str:
    assert response[0] == 0x0A  # field 1, length-delimited
    return response[2 : 2 + response[1]].decode()


@pytest.fixture
def g3(engine_factory: EngineFactory) -> Iterator[tuple[EmulatedEngine, grpc.Channel]]:
    engine = engine_factory("g3")
    with grpc.insecure_channel(engine.nodes[0].endpoint) as channel:
        yield engine, channel


def call(channel: grpc.Channel, method: str, request: bytes, metadata: list[tuple[str, str]]) -> bytes:
    # wait_for_ready: after a restart, the channel reconnects instead of failing at once
    response: bytes = channel.unary_unary(method)(request, metadata=metadata, timeout=10, wait_for_ready=True)
    return response


def refusal(channel: grpc.Channel, method: str, request: bytes, metadata: list[tuple[str, str]]) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, method, request, metadata)
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.UNKNOWN  # a plain Go error, as the engine returns
    return str(error.details())


def test_register_checks_the_signature(g3: tuple[EmulatedEngine, grpc.Channel]) -> None:
    engine, channel = g3
    env = engine.nodes[0].env
    request = register_request(env)
    signature = env["MESG_REGISTER_SIGNATURE"]
    raw = base64.b64decode(signature)
    high_s = raw[:32] + (CURVE_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    other_env = field(1, from_b58(env["MESG_SERVICE_HASH"])) + field(2, bytes(32))

    assert refusal(channel, REGISTER, request, []) == (
        'signature not found in metadata, make sure to set it using the key "mesg_request_signature"'
    )
    for wrong in (
        (request, engine.nodes[0].rogue_env["MESG_REGISTER_SIGNATURE"]),  # a key it does not trust
        (other_env, signature),  # a signature of another request
        (request, base64.b64encode(high_s).decode()),  # the same signature with a high S
    ):
        assert refusal(channel, REGISTER, wrong[0], [("mesg_request_signature", wrong[1])]) == (
            "verification of the signature failed"
        )
    assert token_of(call(channel, REGISTER, request, [("mesg_request_signature", signature)]))


def test_tokens_are_replaced_by_register_and_lost_on_restart(g3: tuple[EmulatedEngine, grpc.Channel]) -> None:
    engine, channel = g3
    env = engine.nodes[0].env
    register = [("mesg_request_signature", env["MESG_REGISTER_SIGNATURE"])]
    result = field(1, bytes(32)) + field(3, b"some error")  # executionHash, error

    assert refusal(channel, RESULT, result, []) == (
        'credential not found in metadata, make sure to set it using the name "mesg_credential_token"'
    )
    first = token_of(call(channel, REGISTER, register_request(env), register))
    unknown = refusal(channel, RESULT, result, [("mesg_credential_token", first)])
    assert "not found" in unknown  # the token passed; the execution is unknown
    second = token_of(call(channel, REGISTER, register_request(env), register))
    assert (
        refusal(channel, RESULT, result, [("mesg_credential_token", first)])
        == "credential token doesn't exist"
    )
    engine.call("restart", down_ms=200)
    assert (
        refusal(channel, RESULT, result, [("mesg_credential_token", second)])
        == "credential token doesn't exist"
    )
