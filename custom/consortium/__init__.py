"""consortium: a federated-learning kit for cross-silo hospital consortia on NVIDIA FLARE.

The house, from the floor up (``docs/architecture.md`` has the round's data flow):

* the maths, which does not know FLARE: :mod:`consortium.protocol` (the typed contracts between a
  site and the server), :mod:`consortium.aggregation`, :mod:`consortium.learning`,
  :mod:`consortium.privacy`, :mod:`consortium.crypto`, :mod:`consortium.audit`,
  :mod:`consortium.registry`, :mod:`consortium.data`, :mod:`consortium.telemetry`,
  :mod:`consortium.operations`, :mod:`consortium.reports`, and the job rules beside them
  (``allowlist``, ``job_content``, ``names``, ``training_settings``, ``fileio``, ``defaults``);
* the FLARE adapters, thin, by role: :mod:`consortium.flare` (executors, filters, aggregators,
  workflows, listeners, audit, he);
* what drives FLARE from outside: :mod:`consortium.provisioning` (kits, builders, the site
  request flow), :mod:`consortium.poc` (the local consortium), :mod:`consortium.jobs` (validate,
  submit, watch, report), :mod:`consortium.admin` (kits, incidents, models, resume, audit),
  :mod:`consortium.recipes` (every job as a FLARE Recipe);
* :mod:`consortium.cli`, the command line: parse, call one of the above, print. Nothing imports it.

Where nvflare is imported (``tests/test_house.py`` recomputes this from the imports): the FLARE
adapters (:mod:`consortium.flare`), the provisioning builders (:mod:`consortium.provisioning.builders`),
the recipes (:mod:`consortium.recipes`), and the modules that drive FLARE's provisioning or admin API:
:mod:`consortium.provisioning.provision`, :mod:`consortium.provisioning.distributed.approve`,
:mod:`consortium.provisioning.distributed.bundle`, :mod:`consortium.provisioning.distributed.package`,
:mod:`consortium.poc.admin_session`, :mod:`consortium.jobs.submit`, :mod:`consortium.admin.models`
(FLARE's job store, to clear a stuck record), :mod:`consortium.cli.main` (the admin API's errors), and
:mod:`consortium.allowlist` (FLARE's component base classes, imported only to check a listed class's type).
"""

__version__ = "0.1.0"
