"""The consortium's FedJob: FLARE's :class:`~nvflare.job_config.api.FedJob` whose export writes the
job folder the way ``jobs/`` holds it, the same for ``export``, SimEnv, PocEnv and ProdEnv.

FLARE's own writer rebuilds every component's ``args`` by introspecting a live object (only the
values that differ from a default, from attributes named like the parameters) and keeps a filter's
tasks as a set. Ours writes what the recipe described (:mod:`consortium.recipes.components`):
the ids, class paths and ``args`` one to one, tasks in their order, two-space JSON, the top-level
keys in the order of a hand-written FLARE config. An object that is not a description (a stock
FLARE filter added with ``recipe.add_client_input_filter(...)``) is written by FLARE's rules.
Code is never bundled: the sites admit the installed ``consortium`` package only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from nvflare.job_config.api import FedJob
from nvflare.job_config.fed_job_config import FED_CLIENT_JSON, FED_SERVER_JSON, FedJobConfig

from consortium.recipes.components import _Described

APP_PACKAGES = ["consortium"]  # installed at every site: never copied into a job's custom/ folder


def dump(config: dict) -> str:
    """The text of a job file: two-space JSON, a final newline."""
    return json.dumps(config, indent=2) + "\n"


class ConsortiumJobConfig(FedJobConfig):
    """FLARE's job config with our file layout (see the module docstring)."""

    def _prepare_meta(self) -> str:
        self._validate_meta_props(self.meta_props)
        props = dict(self.meta_props or {})
        meta = {"name": self.job_name}
        if "description" in props:
            meta["description"] = props.pop("description")
        meta |= {"resource_spec": self.resource_specs, "deploy_map": self._get_deploy_map(), "min_clients": self.min_clients}
        if self.mandatory_clients:
            meta["mandatory_clients"] = self.mandatory_clients
        return dump(meta | props)

    def _entry(self, cid: str | None, obj, custom_dir: str) -> dict:
        if isinstance(obj, _Described):
            path, args = obj.path, dict(obj.args)
            cid = obj.id if cid is None else cid
        else:
            path, args = self._get_class_path(obj, custom_dir), self._get_args(obj, custom_dir)
        return ({"id": cid} if cid is not None else {}) | {"path": path, "args": args}

    def _filters(self, taskset_filters: list, custom_dir: str) -> list[dict]:
        out = []
        for task_set, filters in taskset_filters:
            ordered = next((f.tasks for f in filters if isinstance(f, _Described) and set(f.tasks) == task_set), None)
            out.append({"tasks": ordered or sorted(task_set), "filters": [self._entry(None, f, custom_dir) for f in filters]})
        return out

    def _write(self, path: str, config: dict) -> None:
        Path(path).write_text(dump(config))

    def _copy_app_files(self, config_dir: str, custom_dir: str, app) -> None:
        self._copy_ext_scripts(custom_dir, app.ext_scripts)
        self._copy_ext_dirs(custom_dir, app)
        self._copy_file_sources(config_dir, custom_dir, app.file_sources)

    def _get_server_app(self, config_dir, custom_dir, fed_app):
        app = fed_app.server_app
        config = {"format_version": 2, **app.additional_params,
                  "task_data_filters": self._filters(app.task_data_filters, custom_dir),
                  "task_result_filters": self._filters(app.task_result_filters, custom_dir),
                  "components": [self._entry(cid, c, custom_dir) for cid, c in app.components.items()],
                  "workflows": [self._entry(w.id, w.controller, custom_dir) for w in app.workflows]}
        self._write(os.path.join(config_dir, FED_SERVER_JSON), config)
        self._copy_app_files(config_dir, custom_dir, app)

    def _get_client_app(self, config_dir, custom_dir, fed_app):
        app = fed_app.client_app
        config = {"format_version": 2, **app.additional_params,
                  "executors": [{"tasks": list(e.tasks), "executor": self._entry(None, e.executor, custom_dir)}
                                for e in app.executors],
                  "task_result_filters": self._filters(app.task_result_filters, custom_dir),
                  "task_data_filters": self._filters(app.task_data_filters, custom_dir),
                  "components": [self._entry(cid, c, custom_dir) for cid, c in app.components.items()]}
        self._write(os.path.join(config_dir, FED_CLIENT_JSON), config)
        self._copy_app_files(config_dir, custom_dir, app)


class ConsortiumJob(FedJob):
    """A FedJob written by :class:`ConsortiumJobConfig`; ``meta_props`` go into meta.json (e.g.
    ``description``, the privacy ``scope``)."""

    def __init__(self, name: str, min_clients: int, meta_props: dict | None = None) -> None:
        super().__init__(name=name, min_clients=min_clients, meta_props=meta_props or None)
        self.job = ConsortiumJobConfig(job_name=name, min_clients=min_clients, meta_props=meta_props or None)
        self.set_app_packages(APP_PACKAGES)


class _FolderConfig(FedJobConfig):
    def __init__(self, folder: Path, name: str) -> None:
        super().__init__(job_name=name, min_clients=1)
        self.folder = folder

    def generate_job_config(self, job_root):
        shutil.copytree(self.folder, os.path.join(job_root, self.job_name))


class FolderJob(FedJob):
    """A job folder as it is on disk (hand-edited JSON, a rollback job), to run it in an execution
    environment as it stands: its export is a copy of the folder (checked by the environment, as
    ``consortium job validate`` checks it)."""

    def __init__(self, folder: Path | str) -> None:
        folder = Path(folder).resolve()
        name = re.sub(r"[^A-Za-z0-9._-]", "_", folder.name).lstrip("._-") or "job"
        super().__init__(name=name)
        self.job = _FolderConfig(folder, name)
        self.folder = folder

    def _set_all_apps(self):  # nothing to assemble: the folder is the job
        self._deployed = True
