"""The encrypted round in FLARE (TenSEAL CKKS): the site's encrypt/decrypt filters, the server's
ciphertext-only components, FLARE's own HE filters around our executors.
"""
