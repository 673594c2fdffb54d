"""Helpers shared by the experiments: exact scoring (scoring), model arguments (models), atomic outputs (output)."""
