"""Benchmarks of resilient_routing against its floors and peers: ``python -m benchmarks.run``."""
