"""A workflow that runs before training: pooled feature standardisation from site moments.

Sites send only ``(n, sum, sum of squares)`` per feature; the server pools them with
:func:`consortium.data.standardisation.pooled_standardiser` and broadcasts the mean/std back.
It fails the job (system panic) rather than let training start with sites scaled differently.
"""

from __future__ import annotations

from nvflare.apis.client import Client
from nvflare.apis.controller_spec import ClientTask, Task
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.impl.controller import Controller
from nvflare.apis.shareable import Shareable
from nvflare.apis.signal import Signal

from consortium.data.standardisation import FeatureMoments, pooled_standardiser
from consortium.flare.workflows.scatter import HonourTaskCheckPeriod
from consortium.protocol.site_result import Task as TaskName


class FederatedStandardisation(HonourTaskCheckPeriod, Controller):
    def __init__(self, min_clients: int = 1, timeout: int = 120, task_check_period: float = 0.05,
                 wait_time_after_min_received: int = 0) -> None:
        """``min_clients`` sites must send moments; once they have, the others get
        ``wait_time_after_min_received`` more seconds (a site that misses it is left out of the
        pooled statistics and of the job's training, which refuses a site without them)."""
        super().__init__(task_check_period=task_check_period)
        if not isinstance(min_clients, int) or min_clients < 1:
            raise ValueError(f"standardisation: min_clients must be an integer >= 1, got {min_clients!r}")
        if not isinstance(wait_time_after_min_received, int | float) or wait_time_after_min_received < 0:
            raise ValueError(f"standardisation: wait_time_after_min_received must be >= 0, got {wait_time_after_min_received!r}")
        self.min_clients = min_clients
        self.timeout = timeout
        self.wait_time_after_min_received = wait_time_after_min_received
        self.moments: dict[str, FeatureMoments] = {}

    def start_controller(self, fl_ctx: FLContext) -> None:
        self.moments = {}

    def stop_controller(self, fl_ctx: FLContext) -> None:
        pass

    def process_result_of_unknown_task(self, client: Client, task_name, client_task_id, result, fl_ctx) -> None:
        self.log_warning(fl_ctx, f"ignoring result of unknown task {task_name} from {client.name}")

    def _collect(self, client_task: ClientTask, fl_ctx: FLContext) -> None:
        name, result = client_task.client.name, client_task.result
        rc = result.get_return_code(ReturnCode.OK)
        if rc != ReturnCode.OK:
            self.log_error(fl_ctx, f"site {name} failed to send feature moments: {rc}")
            return
        self.moments[name] = FeatureMoments.from_dict(from_shareable(result).data)
        client_task.result = None

    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext) -> None:
        stats_task = Task(name=TaskName.FEATURE_STATS.value, data=Shareable(), timeout=self.timeout,
                          result_received_cb=self._collect)
        self.broadcast_and_wait(stats_task, fl_ctx, min_responses=self.min_clients,
                                wait_time_after_min_received=self.wait_time_after_min_received, abort_signal=abort_signal)
        if abort_signal.triggered:
            return
        if len(self.moments) < self.min_clients:
            self.system_panic(f"feature moments from {len(self.moments)} sites ({sorted(self.moments)}), "
                              f"need min_clients={self.min_clients}", fl_ctx)
            return
        stats = pooled_standardiser(list(self.moments.values()))
        self.log_info(fl_ctx, f"pooled standardisation over {sum(m.n for m in self.moments.values())} rows "
                              f"from {sorted(self.moments)}")
        acks: list[str] = []

        def ack(client_task: ClientTask, fl_ctx: FLContext) -> None:
            if client_task.result.get_return_code(ReturnCode.OK) == ReturnCode.OK:
                acks.append(client_task.client.name)

        data = DXO(data_kind=DataKind.STATISTICS, data=stats.to_dict()).to_shareable()
        set_task = Task(name=TaskName.SET_STANDARDISATION.value, data=data, timeout=self.timeout, result_received_cb=ack)
        self.broadcast_and_wait(set_task, fl_ctx, targets=sorted(self.moments),
                                min_responses=len(self.moments), abort_signal=abort_signal)
        if not abort_signal.triggered and len(acks) < len(self.moments):
            self.system_panic(f"standardisation acknowledged by {sorted(acks)} only, sent to {sorted(self.moments)}", fl_ctx)
