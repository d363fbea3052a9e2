"""A component as a job names it: an id, a class path and the JSON ``args`` the class is built from
at the site or the server, written one to one into the exported config.

FLARE's :class:`~nvflare.job_config.api.FedJob` places executors, workflows and filters by their
type, so each role has its own description type (:class:`ExecutorSpec` is an ``Executor``,
:class:`WorkflowSpec` a ``Controller``, :class:`FilterSpec` a ``Filter``). A description is never
run: FLARE builds the named class from the exported JSON, as it does for a hand-written job. Its
class path, and every class path in its ``args``, is checked when it is made through the
allow-list resolver (:mod:`consortium.allowlist`: on the list, importable, of the role's FLARE
type), so a misspelt or unlisted class fails in ``job.py``, not at the sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nvflare.apis.executor import Executor
from nvflare.apis.filter import Filter
from nvflare.apis.impl.controller import Controller

from consortium.allowlist import DEFAULT_ALLOWED, path_arguments, resolve_component, resolve_listed


def check_args(path: str, args: Mapping) -> None:
    """Every class path inside a component's ``args`` (``model_path``, nested ``{"path": ...}``),
    through the same resolver."""
    for arg in path_arguments({"args": dict(args)}, path):
        resolve_component(arg.path, arg.role, DEFAULT_ALLOWED, where=arg.where)


class _Described:
    """What every description holds: ``id`` (None: FLARE's default), ``path``, ``args``."""

    def _describe(self, id: str | None, path: str, args: Mapping | None, role: str) -> None:
        resolve_listed(path, role, where=f"{type(self).__name__}({id or path}).path")
        check_args(path, args or {})
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
        self._describe(id, path, args, "component")


class ExecutorSpec(_Described, Executor):
    """A site executor and the tasks it serves."""

    def __init__(self, id: str, path: str, args: Mapping | None = None) -> None:
        Executor.__init__(self)
        self._describe(id, path, args, "executor")

    execute = _Described._not_run


class WorkflowSpec(_Described, Controller):
    """A server workflow (controller)."""

    def __init__(self, id: str, path: str, args: Mapping | None = None) -> None:
        Controller.__init__(self)
        self._describe(id, path, args, "controller")

    start_controller = control_flow = stop_controller = _Described._not_run


class FilterSpec(_Described, Filter):
    """A task data or result filter, with the tasks it applies to in the order the job lists them
    (FLARE keeps a set)."""

    def __init__(self, path: str, args: Mapping | None = None, tasks: Sequence[str] = ()) -> None:
        Filter.__init__(self)
        self._describe(None, path, args, "filter")
        self.tasks = list(tasks)

    process = _Described._not_run
