"""The built-in pipeline: the VideoProcessing workflow and the diagnostic workflows.

The diagnostic workflow types each run one activity of the same name (see
``workers.activities``). Tests and benchmarks use them to exercise the manager without
video: Noop returns at once, Sleep waits, BurnCpu spins a core, Fail raises, and
SpawnChild starts a grandchild process.
"""

from __future__ import annotations

import os

from workers.config import ActivityTypeConfig, RetryPolicy, TaskListConfig, WorkflowTypeConfig

VIDEO_WORKFLOW = "VideoProcessing"
VIDEO_DECISIONS = "video-decisions"
VIDEO_ACTIVITIES = "video-activities"
DIAGNOSTIC_DECISIONS = "diagnostic-decisions"
DIAGNOSTIC_ACTIVITIES = "diagnostic-activities"
DIAGNOSTIC_TYPES = ("Noop", "Sleep", "BurnCpu", "Fail", "SpawnChild")
DEFAULT_VERSION = "1"


def _activity(
    name: str,
    task_list: str,
    timeouts: tuple[int, ...],
    *,
    max_failures: int = 3,
    schedule_to_start: int = 600,
    heartbeat: int = 60,
    description: str,
) -> ActivityTypeConfig:
    # Each attempt is scheduled anew, so SCHEDULE_TO_CLOSE must cover the wait in the
    # queue plus the longest slot, or the longer slots could never be used.
    return ActivityTypeConfig(
        name=name,
        version=DEFAULT_VERSION,
        task_list=task_list,
        schedule_to_start_timeout=schedule_to_start,
        start_to_close_timeout=timeouts[0],
        schedule_to_close_timeout=schedule_to_start + max(timeouts),
        heartbeat_timeout=heartbeat,
        retry=RetryPolicy(max_failures=max_failures, timeouts=timeouts),
        description=description,
    )


def builtin_pipeline() -> tuple[
    tuple[TaskListConfig, ...], tuple[ActivityTypeConfig, ...], tuple[WorkflowTypeConfig, ...]
]:
    """Return the built-in task lists, activity types and workflow types."""
    # Activity work is CPU-bound, so the scaler may use every core; it adds workers only
    # while CPU stays under its target.
    cores = os.cpu_count() or 1
    task_lists = (
        TaskListConfig(name=VIDEO_DECISIONS, kind="decision", min_processes=1, max_processes=2),
        TaskListConfig(name=VIDEO_ACTIVITIES, kind="activity", min_processes=1, max_processes=cores),
        TaskListConfig(name=DIAGNOSTIC_DECISIONS, kind="decision", min_processes=1, max_processes=2),
        TaskListConfig(name=DIAGNOSTIC_ACTIVITIES, kind="activity", min_processes=1, max_processes=cores),
    )
    activity_types = (
        _activity(
            "FaceDetect",
            VIDEO_ACTIVITIES,
            (900, 1800, 3600),
            description="Sample frames of a video, detect faces and store the crops.",
        ),
        # Recognition may be reviewed by a person, so its later slots allow hours.
        _activity(
            "FaceRecognize",
            VIDEO_ACTIVITIES,
            (900, 3600, 14400),
            description="Embed and cluster face crops into people and match them to a gallery.",
        ),
        _activity("Noop", DIAGNOSTIC_ACTIVITIES, (60, 300), heartbeat=30, description="Return at once."),
        _activity("Sleep", DIAGNOSTIC_ACTIVITIES, (600, 1800), heartbeat=30, description="Wait for a time."),
        _activity("BurnCpu", DIAGNOSTIC_ACTIVITIES, (600, 1800), heartbeat=30, description="Keep one core busy."),
        _activity("Fail", DIAGNOSTIC_ACTIVITIES, (60, 300), heartbeat=30, description="Raise an error."),
        _activity(
            "SpawnChild", DIAGNOSTIC_ACTIVITIES, (300, 900), heartbeat=30, description="Start a grandchild process."
        ),
    )
    workflow_types = (
        WorkflowTypeConfig(
            name=VIDEO_WORKFLOW,
            version=DEFAULT_VERSION,
            task_list=VIDEO_DECISIONS,
            steps=("FaceDetect", "FaceRecognize"),
            description="Find the faces in a video and group them into people.",
        ),
        *(
            WorkflowTypeConfig(
                name=name,
                version=DEFAULT_VERSION,
                task_list=DIAGNOSTIC_DECISIONS,
                steps=(name,),
                execution_start_to_close_timeout=21600,
                description=f"Diagnostic workflow that runs one {name} activity.",
            )
            for name in DIAGNOSTIC_TYPES
        ),
    )
    return task_lists, activity_types, workflow_types
