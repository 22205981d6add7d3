"""Transforms of task inputs: demographic variants (fairness), perturbations (robustness)."""
