"""What the service imports at start: modules only some deployments need stay out (peak RSS)."""

from __future__ import annotations

import subprocess
import sys


def test_the_service_does_not_import_what_only_optional_features_use() -> None:
    # websockets (the channel listener), aiohttp (the webhook and metrics servers; Pusher calls
    # go through http1) and prometheus_client (metrics endpoint) cost 1 to 5 MB of RSS each;
    # they are imported when their feature starts. A fresh interpreter, as the engine starts it.
    optional = ("websockets", "aiohttp", "prometheus_client")
    code = f"import sys, mesg_pusher.cli; print(' '.join(m for m in {optional!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []
