"""paradistill.models"""
