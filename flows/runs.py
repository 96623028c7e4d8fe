"""Prefect's side of the release records (``inferops.runs``): note the run a release
runs in, and mark a killed release's runs crashed so that Prefect stops listing them as
running."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import State, StateType
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from inferops import runs
from inferops.runs import Orphan, ReleaseRecord

_UNFINISHED = [StateType.PENDING, StateType.RUNNING, StateType.SCHEDULED]


def returned(state: State, what: str) -> dict[str, Any]:
    """The dict a run returned (its verdict, its summary); an error it ended with is
    raised, and a run that returned nothing else is a RuntimeError naming ``what``."""
    data = state.result(raise_on_failure=False)
    if isinstance(data, BaseException):
        raise data
    if not isinstance(data, dict):
        raise RuntimeError(f"the run ended {state.name} without a {what}: {state.message}")
    return data


@contextlib.contextmanager
def recorded(state_dir: Path) -> Iterator[ReleaseRecord]:
    """The release record of this process, with the flow run it is called from."""
    with runs.recording(state_dir) as record:
        if flow_run.id:
            record.add_flow_run(str(flow_run.id), str(flow_run.flow_name))
            record.update(api_url=PREFECT_API_URL.value())
        yield record


def crash_runs(api_url: str | None, flow_runs: Mapping[str, str], message: str) -> int:
    """Mark the flow runs that have not finished crashed, with their subflow runs (a
    build the release started) and task runs, on the Prefect API at ``api_url`` (None:
    this process' own); how many flow runs changed."""
    # A client of its own: inside a flow, get_client() returns the flow's, whatever the URL.
    opened = SyncPrefectClient(api_url) if api_url else get_client(sync_client=True)
    changed = 0
    with opened as client:
        found = []
        for run_id in flow_runs:
            try:
                found.append(client.read_flow_run(UUID(run_id)))
            except (ObjectNotFound, ValueError):
                continue
        if found:
            found += client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[r.id for r in found])
                )
            )
        for run in {r.id: r for r in found}.values():
            if run.state is None or run.state.is_final():
                continue
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            changed += 1
            for task_run in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=_UNFINISHED))
                ),
            ):
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    return changed


def clean_orphans(state_dir: Path) -> list[Orphan]:
    """Clean up after the killed releases recorded in ``state_dir``; each is logged."""
    found = runs.clean_orphans(state_dir, crash_runs)
    for orphan in found:
        get_run_logger().warning("%s", orphan.describe())
    return found
