"""Local stand-ins and drivers shared by the tests, the demo and the benchmark."""
