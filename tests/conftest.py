"""Shared fixtures: real soketi servers, the local engine and the service as processes."""

pytest_plugins = ["tests.support.fixtures"]
