"""Encrypted aggregation with TenSEAL CKKS (optional dependency; no nvflare import)."""
