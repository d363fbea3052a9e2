"""An admin's operations on a consortium: kits (doctor, certificates), revocation, incidents, the
model registry, resume and the audit verdicts.
"""
