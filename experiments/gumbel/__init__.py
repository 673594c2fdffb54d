"""Gumbel Distillation diagnostics: does the student follow the noise, how deep is the noise-to-text map."""
