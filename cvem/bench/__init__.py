"""Benchmarks: policy comparison on traces and scenarios, and control-plane scale."""
