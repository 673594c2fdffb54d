"""paradistill.eval"""
