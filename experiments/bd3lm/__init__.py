"""BD3-LM experiments: validation NELBO ordering against AR and MDLM."""
