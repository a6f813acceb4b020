"""panoseek.training."""
