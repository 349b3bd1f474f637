"""The one-activity no-op workflow in simpleflow's terms, for the throughput comparison.

simpleflow's decider and worker load this module by name
(`benchmarks.simpleflow_workflow.NoopWorkflow`); the repository root must be on PYTHONPATH.
"""

from __future__ import annotations

from simpleflow import Workflow, activity

DECISIONS = "sf-decisions"
ACTIVITIES = "sf-activities"


@activity.with_attributes(task_list=ACTIVITIES, version="1", start_to_close_timeout=60, schedule_to_start_timeout=600,
                          schedule_to_close_timeout=900, heartbeat_timeout=60)
def noop() -> dict:
    return {}


class NoopWorkflow(Workflow):
    name = "SimpleflowNoop"
    version = "1"
    task_list = DECISIONS
    execution_timeout = 3600
    decision_tasks_timeout = 60

    def run(self) -> dict:
        return self.submit(noop).result
