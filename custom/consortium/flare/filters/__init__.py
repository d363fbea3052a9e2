"""FLARE filters on a site's result: update-level DP, and the fire drill."""
