"""Every consortium job defined once, as an NVIDIA FLARE Recipe (``nvflare.recipe.spec.Recipe``
over a ``FedJob``) built from a typed, validated configuration, and run in one of the
consortium's execution environments:

    from consortium.recipes import ConsortiumSimEnv, HeartConfig, HeartRecipe

    recipe = HeartRecipe(HeartConfig(name="heart_fedprox", algorithm="fedprox", fedprox_mu=1.0, rounds=5))
    result = recipe.execute(ConsortiumSimEnv()).get_result()   # the folder `consortium job report` reads

``jobs/`` is the export of :data:`~consortium.recipes.catalogue.JOBS` (``consortium job export``).
"""

from consortium.recipes.base import ConsortiumRecipe
from consortium.recipes.config import Intervals, JobConfig
from consortium.recipes.envs import ConsortiumPocEnv, ConsortiumProdEnv, ConsortiumSimEnv
from consortium.recipes.heart import HeartConfig, HeartRecipe
from consortium.recipes.imaging import ImagingConfig, ImagingRecipe

__all__ = [
    "ConsortiumPocEnv",
    "ConsortiumProdEnv",
    "ConsortiumRecipe",
    "ConsortiumSimEnv",
    "HeartConfig",
    "HeartRecipe",
    "ImagingConfig",
    "ImagingRecipe",
    "Intervals",
    "JobConfig",
]
