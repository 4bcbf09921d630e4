"""Measurement: retrieval evaluation (BEIR), route evaluation, the soak test and the benchmarks."""
