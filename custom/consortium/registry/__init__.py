"""Versioned global models: every round's model with its SHA-256 and what made it (see
:mod:`consortium.registry.store`)."""

from consortium.registry.store import ModelRegistry, RegistryEntry, RegistryError

__all__ = ["ModelRegistry", "RegistryEntry", "RegistryError"]
