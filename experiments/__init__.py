"""Research experiments on top of the paradistill package, grouped by method (gumbel/, sdtt/, adjust/, bd3lm/,
bench/, eval/); each module answers one question and runs as `python -m experiments.<group>.<question>` from the
repository root. `common/` holds what several of them share: the exact scorer, the LABEL=RUN model arguments and
the atomic output writers."""
