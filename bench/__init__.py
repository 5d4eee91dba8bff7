"""Benchmarks: measured throughput, latency and Graph cost of the pipeline (`python bench/pipeline.py`)."""
