"""FLARE controllers: ScatterAndGather and cross-site evaluation as the consortium runs them, and
the federated standardisation that runs first.
"""
