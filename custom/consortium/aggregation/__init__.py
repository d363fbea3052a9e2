"""Server-side combination of site updates."""
