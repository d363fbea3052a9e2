"""Where a recipe runs: FLARE's execution environments, fitted to the consortium. Each checks the
exported job against the consortium (class allow-list, sites, no bundled code; as ``consortium
validate`` does) before it runs, and each ``Run.get_result()`` is the folder ``consortium job report``
reads.

* :class:`ConsortiumSimEnv`: FLARE's simulator with the consortium's sites (project.yml), its class
  allow-list, each site's imaging data made from its scanner profile and, for an HE job, a CKKS key
  pair for the run (``consortium job simulate`` runs on it too).
* :class:`ConsortiumPocEnv`: the consortium ``consortium poc up`` started; it is used, never
  started or stopped here (FLARE's PocEnv would provision and start a fresh POC of its own).
* :class:`ConsortiumProdEnv`: a production consortium, through an admin's startup kit.
"""

from consortium.defaults import DEFAULT_PROJECT
from consortium.recipes.envs.admin import ConsortiumPocEnv, ConsortiumProdEnv
from consortium.recipes.envs.checks import checked_export
from consortium.recipes.envs.simulator import ConsortiumSimEnv, job_encrypts, simulator_he_keys, uses_imaging

__all__ = ["DEFAULT_PROJECT", "ConsortiumPocEnv", "ConsortiumProdEnv", "ConsortiumSimEnv", "checked_export",
           "job_encrypts", "simulator_he_keys", "uses_imaging"]
