"""Benchmarks: simulations that measure the pipeline's decisions (not tests)."""
