"""Developer tools that are not part of the broker (mutation testing)."""
