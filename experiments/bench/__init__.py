"""Benchmarks of single mechanisms: Gumbel noise extraction memory, BD3-LM block KV cache."""
