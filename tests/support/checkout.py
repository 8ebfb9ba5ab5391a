"""Where the checkout is: the repository root, and what the tools around the service find in it.

Everything in tests/, benchmarks/ and tools/ runs from a checkout (none of it ships), so paths
are taken from the repository root, never from where an installed package lies.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root (tests/support/checkout.py is two folders below it).
ROOT = Path(__file__).resolve().parents[2]
#: The service's definition: what the local engine deploys, and what the service reads.
MESG_YML = ROOT / "mesg.yml"
#: ``npm ci`` at the root puts soketi and mesg-js here (package.json pins them).
NODE_MODULES = ROOT / "node_modules"
