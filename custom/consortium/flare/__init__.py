"""Thin FLARE adapters: the only package (with :mod:`consortium.cli`) that imports nvflare."""
