"""The receiving side: Pusher channel events (``received``) and webhooks (``webhook``) as MESG events."""

from mesg_pusher.receive.emitter import Emitter
from mesg_pusher.receive.listener import Listener
from mesg_pusher.receive.service import Receiving
from mesg_pusher.receive.settings import ReceiveSettings

# The webhook server (aiohttp.web, 2.5 MB of RSS) is imported only when PUSHER_WEBHOOK_PORT
# asks for it: from mesg_pusher.receive.webhook import WebhookServer.
__all__ = ["Emitter", "Listener", "ReceiveSettings", "Receiving"]
