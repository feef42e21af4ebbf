"""The experiments behind results/: run each as a module from the repository root, e.g. ``python -m experiments.table2``."""
