"""What the service imports at start: modules only some deployments need stay out (peak RSS)."""

from __future__ import annotations

import subprocess
import sys


def test_the_service_does_not_import_what_only_optional_features_use() -> None:
    # websockets (the channel listener), aiohttp.web (webhook, metrics endpoint) and
    # prometheus_client (metrics endpoint) cost 1 to 3 MB of RSS each; they are imported when
    # their feature starts. A fresh interpreter, as the engine starts the service.
    optional = ("websockets", "aiohttp.web", "prometheus_client")
    code = f"import sys, mesg_pusher.cli; print(' '.join(m for m in {optional!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []
