"""``mesg-pusher check``: are the settings right, and can the service reach Pusher and the engine?

Loads the settings as the service does (environment over ``.env``, ``PUSHER_URL`` below the
single variables), prints them with secrets masked and where each came from, then tries
Pusher with a real ``channels`` call and, when ``MESG_ENDPOINT`` is set, opens a gRPC
connection to the engine. Each problem is one ``FAIL`` line naming what is wrong and the
variable to fix; the exit status is 1 if there is any, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from dotenv import dotenv_values

from mesg_pusher import env
from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import (
    CA_BUNDLE_VARIABLE,
    VARIABLES,
    PusherSettings,
    ServiceSettings,
    merged_environment,
)
from mesg_pusher.definition import ServiceDefinition, load_definition
from mesg_pusher.errors import (
    ConfigError,
    InputError,
    PusherHTTPError,
    PusherTimeout,
    PusherUnknownOutcome,
    PusherUnreachable,
)
from mesg_pusher.logs import configure_logging, log_format
from mesg_pusher.receive import ReceiveSettings
from mesg_pusher.redact import MASK, redact_pusher_url, redact_url, scrub
from mesg_pusher.tasks import check_registry

ENGINE_TIMEOUT = 5.0
PREFIXES = ("PUSHER_", "MESG_", "LOG_")
KNOWN = (
    *VARIABLES.values(),
    "PUSHER_URL",
    CA_BUNDLE_VARIABLE,
    "PUSHER_COALESCE",
    "PUSHER_SUBSCRIBE",
    "PUSHER_WEBHOOK_PORT",
    "PUSHER_WS_HOST",
    "PUSHER_WS_PORT",
    "PUSHER_WEBHOOK_SECRETS",
    "PUSHER_LISTENER_USER_ID",
    "PUSHER_LISTENER_USER_INFO",
    "PUSHER_LISTENER_SIGNIN",
    "PUSHER_LISTENER_WATCHLIST",
)
# Variables whose value is a secret whatever it holds, and the hints for Pusher's refusals.
SECRET_WORDS = ("SECRET", "PASSWORD", "MASTER_KEY", "CREDENTIAL", "SIGNATURE")
HTTP_HINTS: Mapping[int, str] = {
    401: "wrong app secret or key (PUSHER_APP_SECRET, PUSHER_APP_KEY)",
    403: "the app is disabled or over its quota",
    404: "unknown app: wrong PUSHER_APP_ID, or the app is on another cluster (PUSHER_CLUSTER, PUSHER_HOST)",
}


class Report:
    """The lines printed and whether any of them is a failure."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets
        self.failed = False

    def line(self, status: str, text: str) -> None:
        self.failed |= status == "FAIL"
        print(f"{status:4} {scrub(text, self.secrets)}", flush=True)


def masked(name: str, value: str) -> str:
    """A variable's value fit to print."""
    if any(word in name for word in SECRET_WORDS):
        return MASK
    if name == "PUSHER_URL":
        return redact_pusher_url(value)
    if name == "PUSHER_PROXY":
        return redact_url(value)
    if name == "MESG_TOKEN" and len(value) > 8:
        return value[:8] + "…"
    return value


def show_settings(environment: Mapping[str, str], report: Report) -> None:
    """Every variable the service reads that is set, its masked value and where it came from."""
    dotenv_path = Path.cwd() / ".env"
    from_file = (
        {k for k, v in dotenv_values(dotenv_path).items() if v is not None}
        if dotenv_path.is_file()
        else set()
    )
    print(f"settings (environment over {dotenv_path if from_file else 'no .env file'}; secrets masked):")
    names = sorted(k for k in environment if k.startswith(PREFIXES) and env.text(environment, k) is not None)
    for name in names:
        value = environment[name]
        source = ".env" if name in from_file and os.environ.get(name, "").strip() != value else "environment"
        print(f"  {name:36} {scrub(masked(name, value), report.secrets):40} {source}")
    if not names:
        print("  (none set)")
    for name in names:
        if name.startswith("PUSHER_") and name not in KNOWN:
            close = difflib.get_close_matches(name, KNOWN, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            report.line("note", f"{name} is not a variable mesg-pusher reads{hint}")


def pusher_problem(exc: TaskFailed) -> str:
    """What a failed ``channels`` call says about the settings."""
    cause = exc.__cause__
    if isinstance(cause, PusherHTTPError) and cause.status in HTTP_HINTS:
        return f"{HTTP_HINTS[cause.status]}: {exc}"
    if isinstance(cause, PusherUnreachable):
        return f"Pusher unreachable (check PUSHER_HOST or PUSHER_CLUSTER, PUSHER_PORT, PUSHER_USE_TLS, PUSHER_PROXY): {exc}"
    if isinstance(cause, PusherTimeout | PusherUnknownOutcome):
        return f"no answer from Pusher within PUSHER_TIMEOUT: {exc}"
    return str(exc)


async def check_pusher(
    settings: PusherSettings, report: Report, service: ServiceDefinition | None = None
) -> None:
    try:
        options = settings.resolve({})
    except (ConfigError, InputError) as exc:
        report.line("FAIL", f"Pusher settings: {exc}")
        return
    report.line("ok", f"Pusher settings: {options!r}")
    began = time.monotonic()
    try:
        outputs = await run_task("channels", {}, settings, service)
    except TaskFailed as exc:
        report.line("FAIL", pusher_problem(exc))
        return
    elapsed = (time.monotonic() - began) * 1000
    count = len(outputs.get("channels", []))
    report.line(
        "ok", f"Pusher at {options.base_url}: channels answered in {elapsed:.0f} ms ({count} occupied)"
    )


async def check_engine(environment: Mapping[str, str], report: Report) -> None:
    if env.text(environment, "MESG_ENDPOINT") is None:
        report.line(
            "skip", "engine: MESG_ENDPOINT is not set (the engine sets it when it starts the service)"
        )
        return
    try:
        settings = ServiceSettings.from_environment(environment)
    except ConfigError as exc:
        report.line("FAIL", f"engine settings: {exc}")
        return
    channel = grpc.aio.insecure_channel(settings.endpoint)
    began = time.monotonic()
    try:
        await asyncio.wait_for(channel.channel_ready(), ENGINE_TIMEOUT)
    except TimeoutError:
        report.line(
            "FAIL",
            f"engine unreachable: no gRPC connection to MESG_ENDPOINT {settings.endpoint} within "
            f"{ENGINE_TIMEOUT:g} s",
        )
        return
    finally:
        await channel.close()
    elapsed = (time.monotonic() - began) * 1000
    report.line("ok", f"engine at {settings.endpoint}: gRPC connection ready in {elapsed:.0f} ms")


def check_static(environment: Mapping[str, str], report: Report) -> ServiceDefinition | None:
    """What the service checks before it starts: log format, receiving settings, mesg.yml.

    Returns the service definition, if it loaded, for the checks that run tasks."""
    for what, attempt in (
        ("LOG_FORMAT", lambda: log_format(environment)),
        ("receiving settings", lambda: ReceiveSettings.from_environment(environment)),
    ):
        try:
            attempt()
        except ConfigError as exc:
            report.line("FAIL", f"{what}: {exc}")
    try:
        service = load_definition()
        check_registry(service)
    except (ConfigError, ValueError) as exc:
        report.line("FAIL", f"mesg.yml: {exc}")
        return None
    report.line("ok", f"mesg.yml: {service.sid or service.name}, {len(service.tasks)} tasks")
    return service


async def check(environment: Mapping[str, str], settings: PusherSettings, report: Report) -> None:
    service = check_static(environment, report)
    await check_pusher(settings, report, service)
    await check_engine(environment, report)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="mesg-pusher check", description=__doc__).parse_args(argv)
    environment = merged_environment()
    try:
        settings = PusherSettings(environment)
    except ConfigError as exc:  # an unreadable PUSHER_CA_BUNDLE
        unmasked = Report(())
        show_settings(environment, unmasked)
        unmasked.line("FAIL", str(exc))
        return 1
    try:
        webhook_secrets = ReceiveSettings.from_environment(environment).secrets
    except ConfigError:  # reported as a FAIL below, by check_static
        webhook_secrets = ()
    report = Report(settings.secrets + webhook_secrets)
    # Retries and warnings on stderr, masked; the report on stdout. A bad LOG_FORMAT is a FAIL below.
    try:
        fmt = log_format(environment)
    except ConfigError:
        fmt = "text"
    configure_logging("WARNING", report.secrets, fmt)
    show_settings(environment, report)
    asyncio.run(check(environment, settings, report))
    print("something is wrong: see FAIL above" if report.failed else "all good")
    return 1 if report.failed else 0
