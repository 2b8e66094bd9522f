"""Storage: the only code that builds SQL."""
