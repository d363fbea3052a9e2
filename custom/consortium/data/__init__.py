"""Site datasets."""
