"""panoseek.agents."""
