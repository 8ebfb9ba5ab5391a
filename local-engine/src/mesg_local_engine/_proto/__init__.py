"""Generated protobuf and gRPC stubs (tools/gen_protos.py, from the repository's protos/)."""
