"""paradistill.diffusion"""
