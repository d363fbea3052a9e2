"""A component as a job names it: an id, a class path and the JSON ``args`` the class is built from
at the site or the server, written one to one into the exported config.

FLARE's :class:`~nvflare.job_config.api.FedJob` places executors, workflows and filters by their
type, so each role has its own description type (:class:`ExecutorSpec` is an ``Executor``,
:class:`WorkflowSpec` a ``Controller``, :class:`FilterSpec` a ``Filter``). A description is never
run: FLARE builds the named class from the exported JSON, as it does for a hand-written job. Its
class path is checked when it is made (importable, of the role's FLARE type), so a misspelt class
fails in ``job.py``, not at the sites.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from nvflare.apis.executor import Executor
from nvflare.apis.filter import Filter
from nvflare.apis.impl.controller import Controller


def resolve_class(path: str, role: type | None = None) -> type:
    """The class ``path`` names; ValueError naming the path when it is not importable (or not a
    ``role``)."""
    module, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
    if not module:
        raise ValueError(f"component path {path!r} is not a dotted class path")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"component path {path!r} names no importable class ({e})") from e
    if role is not None and not (isinstance(cls, type) and issubclass(cls, role)):
        raise ValueError(f"component path {path!r} is not a FLARE {role.__name__}")
    return cls


class _Described:
    """What every description holds: ``id`` (None: FLARE's default), ``path``, ``args``."""

    def _describe(self, id: str | None, path: str, args: Mapping | None, role: type | None) -> None:
        resolve_class(path, role)
        self.id = id
        self.path = path
        self.args = dict(args or {})

    def _not_run(self, *_args, **_kwargs):
        raise RuntimeError(f"{self.path}: a recipe's description of the component; FLARE builds the component itself "
                           "from the exported job")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, path={self.path!r}, args={self.args!r})"


class ComponentSpec(_Described):
    """A plain component (persistor, aggregator, listener, ...)."""

    def __init__(self, id: str, path: str, args: Mapping | None = None) -> None:
        self._describe(id, path, args, None)


class ExecutorSpec(_Described, Executor):
    """A site executor and the tasks it serves."""

    def __init__(self, id: str, path: str, args: Mapping | None = None) -> None:
        Executor.__init__(self)
        self._describe(id, path, args, Executor)

    execute = _Described._not_run


class WorkflowSpec(_Described, Controller):
    """A server workflow (controller)."""

    def __init__(self, id: str, path: str, args: Mapping | None = None) -> None:
        Controller.__init__(self)
        self._describe(id, path, args, Controller)

    start_controller = control_flow = stop_controller = _Described._not_run


class FilterSpec(_Described, Filter):
    """A task data or result filter, with the tasks it applies to in the order the job lists them
    (FLARE keeps a set)."""

    def __init__(self, path: str, args: Mapping | None = None, tasks: Sequence[str] = ()) -> None:
        Filter.__init__(self)
        self._describe(None, path, args, Filter)
        self.tasks = list(tasks)

    process = _Described._not_run
