"""Checks about the experiments themselves (e.g. that moving them changed no number)."""
