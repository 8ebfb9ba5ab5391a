"""mesg-pusher: a MESG service that publishes to and queries Pusher Channels."""

__version__ = "1.0.0"
