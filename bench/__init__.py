"""Benchmarks for difmachine: ``python -m bench <name> [--json FILE] [options]``.

- ``ntm_step``: NTM copy training throughput and compile time, difmachine vs a hand-written JAX
  step (``bench/handwritten_ntm.py``), side by side in one process;
- ``scaling``: difmachine step time against sequence length and memory slots;
- ``time_to_solve``: training steps and wall time until ntm_copy reaches its target, per seed.
"""
