"""paradistill.train"""
