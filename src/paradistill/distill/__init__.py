"""paradistill.distill"""
