"""Operator commands that run without the engine: ``mesg-pusher exec`` and ``mesg-pusher check``."""
