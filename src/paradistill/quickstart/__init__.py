"""`paradistill quickstart`: every method end to end (run.py), its stages, evaluation and report."""
