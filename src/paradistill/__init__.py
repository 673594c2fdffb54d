"""paradistill: fast parallel text generation with masked diffusion LMs, made good by distillation.

Importing the package has no side effects; submodules are imported on demand.
"""

__version__ = "0.1.0"
