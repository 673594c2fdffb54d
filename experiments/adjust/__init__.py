"""ADJUST experiments: sampler quality against one-token-per-pass sampling, and speed."""
