"""SDTT experiments: round quality and objective, headroom bound, perfect student, tables."""
