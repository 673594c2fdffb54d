"""paradistill.sampling"""
