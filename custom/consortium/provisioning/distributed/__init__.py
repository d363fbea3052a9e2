"""Kits whose private key never leaves the hospital: the request at the site, the approval by the
project admin, the bundle between them, the kit packaged at the site.
"""
