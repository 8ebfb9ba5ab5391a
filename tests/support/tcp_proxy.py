"""The harness's TCP relay, under the name the fault tests import (one relay for both)."""

from mesg_pusher.harness.relay import TcpProxy

__all__ = ["TcpProxy"]
