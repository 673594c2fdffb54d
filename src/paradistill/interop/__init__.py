"""Models in and out of other ecosystems: importing foreign checkpoints into paradistill's backbone, and exports
that load with Hugging Face `transformers` alone."""
