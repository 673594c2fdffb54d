"""paradistill.data"""
