"""A recipe's configuration mirrors the sites' local-training settings field for field (flat, for
the recipe's user): the same names, the same defaults, so a recipe that sets nothing trains as an
executor that is given nothing."""

from dataclasses import MISSING, fields

from consortium.recipes.config import JobConfig
from consortium.training_settings import LocalTrainingSettings

MIRRORED = ("epochs", "site_epochs", "lr", "batch_size", "momentum", "fedprox_mu", "seed")


def _defaults(cls) -> dict:
    return {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(cls)}


def test_the_recipe_mirrors_every_local_training_field_with_its_default():
    job, site = _defaults(JobConfig), _defaults(LocalTrainingSettings)
    assert set(site) - {"dp_sgd"} == set(MIRRORED)  # a new training field must be mirrored too
    assert {k: job[k] for k in MIRRORED} == {k: site[k] for k in MIRRORED}
