"""panoseek.scenes."""
