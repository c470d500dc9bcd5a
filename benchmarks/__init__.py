"""The speed benchmarks behind ``tools/benchmark.py``: ``probes`` (timing, peak memory, FLOPs
and the matmul peak), ``rows`` (every measured row of one model size), ``tables`` (the printed
table) and ``run`` (the whole run and its report)."""
