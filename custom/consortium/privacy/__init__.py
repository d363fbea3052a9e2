"""Differential privacy at a site: the Gaussian mechanism on a whole update, Opacus' accountants,
DP-SGD in local training and the site's persistent privacy ledger. No FLARE imports here."""
