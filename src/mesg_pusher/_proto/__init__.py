"""Generated protobuf and gRPC stubs; only mesg_pusher.engine and the codec import them."""
