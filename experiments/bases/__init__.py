"""The shipped bases (issue 29): training (train.sh), packing into the package (pack), the targets measured on them
(evaluate), the AR -> MDLM adaptation curve (curves)."""
