"""Appends each round's :class:`~consortium.protocol.round_record.RoundRecord` to ``progress.jsonl`` in the job's server workspace (what
``consortium job submit`` follows and ``consortium job report`` reads). A listener, off the round's critical
path: when the file cannot be written the round goes on and a warning says why."""

from __future__ import annotations

import os

from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_context import FLContext

from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, announced_record
from consortium.protocol.files import PROGRESS_FILE


class RoundProgressWriter(FLComponent):
    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type != ROUND_RECORD_EVENT:
            return
        try:
            record = announced_record(fl_ctx)
        except ValueError as e:
            self.log_warning(fl_ctx, f"{e}; nothing written")
            return
        try:
            run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
            with open(os.path.join(run_dir, PROGRESS_FILE), "a", encoding="utf-8") as f:
                f.write(record.to_json_line() + "\n")
        except (OSError, TypeError, ValueError) as e:
            self.log_warning(fl_ctx, f"round {record.round}: progress not written ({e}); the round goes on")
