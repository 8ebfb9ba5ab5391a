"""Generated protobuf and gRPC stubs; only mesg_pusher.engine and the local engine import them."""
