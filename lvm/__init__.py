"""lvm: short-run MCMC inference with OT correction."""
