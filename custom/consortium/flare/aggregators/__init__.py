"""FLARE aggregators: the one round aggregator every plaintext job uses."""
