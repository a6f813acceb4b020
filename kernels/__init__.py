"""panoseek.kernels."""
