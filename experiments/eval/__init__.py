"""Method-independent evaluation: sample quality of LABEL=RUN models, entropy-matched comparisons."""
