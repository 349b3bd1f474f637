"""Typed configuration for swf-manager.

Every duration is in seconds and every size in megabytes unless the field name says
otherwise. The manager loads this from TOML (see ``workers.config_loader``) and validates
it before it forks anything, so a worker process can trust every value it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

TaskListKind = Literal["decision", "activity"]


@dataclass(frozen=True)
class SwfConfig:
    """SWF endpoint, region and domain of the manager."""

    # "local" starts the embedded endpoint (localswf) as a child process. A URL talks to
    # that endpoint. None talks to real SWF in `region`; in a TOML file, "aws" or leaving
    # the key out gives None.
    endpoint_url: str | None = "local"
    region: str = "us-east-1"
    domain: str = "swf-manager"
    domain_description: str = "swf-manager pipelines"
    # SWF accepts 0 to 90 days.
    retention_days: int = 7
    # SQLite file of the embedded endpoint. None puts it in the manager's state directory.
    local_db: Path | None = None
    # TCP port of the embedded endpoint. 0 picks a free port.
    local_port: int = 0
    # Maximum time the embedded endpoint keeps an empty poll open. Real SWF keeps it 60 s.
    local_max_poll_seconds: float = 60.0


@dataclass(frozen=True)
class ClientConfig:
    """botocore settings that every worker process applies to its own boto3 client."""

    # SWF keeps a poll open for up to 60 s, so the read timeout must be longer than that.
    read_timeout: float = 70.0
    connect_timeout: float = 10.0
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = 5
    max_pool_connections: int = 10


@dataclass(frozen=True)
class RetryPolicy:
    """Retry rules of the decider for one activity type.

    Failures and timeouts keep separate budgets: a failure never spends a timeout slot,
    and a timeout never spends a failure retry.
    """

    # Retries after the activity fails with "retry": true. 0 means fail the workflow on
    # the first such failure.
    max_failures: int = 3
    # START_TO_CLOSE timeout of each attempt after a timeout. The first attempt uses the
    # first slot, each retry after a timeout the next one. When the slots run out, the
    # workflow fails.
    timeouts: tuple[int, ...] = (300, 900, 1800)
    # Delay before a retry, taken with a StartTimer decision. 0 retries at once.
    backoff_seconds: int = 0
    # The delay doubles with each retry up to this cap.
    max_backoff_seconds: int = 300


@dataclass(frozen=True)
class ActivityTypeConfig:
    """One registered activity type and the defaults it is registered with."""

    name: str
    version: str
    task_list: str
    # The four SWF activity timeouts, registered as the type's defaults. The decider
    # also sets them on each ScheduleActivityTask, with START_TO_CLOSE from the retry
    # policy's slot for that attempt.
    schedule_to_start_timeout: int = 600
    start_to_close_timeout: int = 300
    schedule_to_close_timeout: int = 3600
    heartbeat_timeout: int = 60
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    description: str = ""


@dataclass(frozen=True)
class WorkflowTypeConfig:
    """One workflow type: a linear pipeline of activity types, run in order."""

    name: str
    version: str
    task_list: str
    # Activity type names, run one after the other. Each gets the workflow input and the
    # previous step's result.
    steps: tuple[str, ...]
    execution_start_to_close_timeout: int = 86400
    task_start_to_close_timeout: int = 60
    child_policy: Literal["TERMINATE", "REQUEST_CANCEL", "ABANDON"] = "TERMINATE"
    # The decider continues as new before the history reaches this many events. SWF
    # terminates an execution at 25,000.
    continue_as_new_after_events: int = 20000
    description: str = ""


@dataclass(frozen=True)
class TaskListConfig:
    """One task list and the bounds on the processes that poll it."""

    name: str
    kind: TaskListKind
    min_processes: int = 1
    max_processes: int = 1
    # A worker exits for a clean recycle after this many tasks. 0 means no limit.
    max_tasks_per_process: int = 0
    # A worker exits for a clean recycle once its resident memory passes this. 0 means no limit.
    max_memory_mb: int = 0


@dataclass(frozen=True)
class ScalingConfig:
    """Inputs and thresholds of the scaling policy."""

    sample_interval: float = 5.0
    # Add workers only while system CPU is under this percentage.
    cpu_target_percent: float = 80.0
    # Remove an idle worker when system CPU stays above this percentage.
    cpu_high_percent: float = 95.0
    # Add workers only while available memory is above this.
    memory_floor_mb: int = 512
    # Remove an idle worker after its list has had no backlog and no busy worker this long.
    scale_down_delay: float = 60.0
    # Minimum time between two scaling steps on one list.
    cooldown: float = 10.0


@dataclass(frozen=True)
class SupervisionConfig:
    """Restart, liveness and shutdown rules."""

    # Tasks running at SIGTERM may continue this long, then the worker's process group
    # gets SIGTERM, then SIGKILL. The systemd unit's TimeoutStopSec and supervisord's
    # stopwaitsecs are set above it.
    drain_timeout: float = 90.0
    # Time between SIGTERM and SIGKILL when the drain deadline has passed.
    kill_grace: float = 5.0
    # A worker that exits within this time of its start counts as a crash.
    crash_window: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # An idle worker is stuck when it reports no progress for the poll timeout plus this.
    idle_margin: float = 30.0
    # A busy worker is stuck after its task's START_TO_CLOSE timeout plus this.
    busy_grace: float = 30.0


@dataclass(frozen=True)
class StorageConfig:
    # A folder, or s3://bucket/prefix.
    root: str = "./swf-manager-data"


@dataclass(frozen=True)
class VideoConfig:
    """Settings of the video activities."""

    # Frames sampled per second of video.
    sample_fps: float = 2.0
    # Largest side of a frame before detection, in pixels. Larger frames are scaled down.
    max_frame_side: int = 960
    # Faces narrower than this, in pixels of the scaled frame, are ignored.
    min_face_size: int = 20
    # Average-linkage distance at which two clusters of 128-d dlib embeddings merge.
    cluster_distance: float = 0.55
    # Distance under which a person matches a gallery entry.
    gallery_match_distance: float = 0.5
    # Folder of known people per user: <gallery_root>/<user_uuid>/<name>/*.jpg. None disables.
    gallery_root: str | None = None
    # "dlib" computes embeddings locally; "rekognition" uses AWS Rekognition.
    recognizer: Literal["dlib", "rekognition"] = "dlib"
    rekognition_collection_prefix: str = "swf-manager-"


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    # "stderr" for journald and terminals, "syslog" for /dev/log.
    output: Literal["stderr", "syslog"] = "stderr"
    syslog_address: str = "/dev/log"
    syslog_facility: str = "local0"
    # Name of an environment variable that contains a Loggly customer token. When it is set,
    # logs are also sent to Loggly over HTTPS in bulk.
    loggly_token_env: str | None = None
    loggly_url: str = "https://logs-01.loggly.com/bulk/{token}/tag/swf-manager/"


@dataclass(frozen=True)
class MetricsConfig:
    # Name of an environment variable that contains the Mixpanel project token.
    mixpanel_token_env: str | None = None
    mixpanel_api_host: str = "api.mixpanel.com"
    # Without a token, events go to this JSON-lines file. None turns events off.
    events_file: str | None = None
    queue_size: int = 10000


@dataclass(frozen=True)
class WebhookConfig:
    # POSTed a JSON summary when a workflow closes. None turns the hook off.
    url: str | None = None
    # Name of an environment variable that contains the HMAC-SHA256 key.
    secret_env: str | None = None
    attempts: int = 5
    timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    """The whole configuration of one manager."""

    swf: SwfConfig = field(default_factory=SwfConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    task_lists: tuple[TaskListConfig, ...] = ()
    activity_types: tuple[ActivityTypeConfig, ...] = ()
    workflow_types: tuple[WorkflowTypeConfig, ...] = ()
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    # Folder for the status socket, the state file and the embedded endpoint's database.
    # None picks $XDG_RUNTIME_DIR/swf-manager, else /tmp/swf-manager-<uid>.
    state_dir: Path | None = None

    def activity_type(self, name: str) -> ActivityTypeConfig:
        for activity_type in self.activity_types:
            if activity_type.name == name:
                return activity_type
        raise KeyError(f"activity type {name!r} is not configured")

    def workflow_type(self, name: str) -> WorkflowTypeConfig:
        for workflow_type in self.workflow_types:
            if workflow_type.name == name:
                return workflow_type
        raise KeyError(f"workflow type {name!r} is not configured")

    def task_list(self, name: str) -> TaskListConfig:
        for task_list in self.task_lists:
            if task_list.name == name:
                return task_list
        raise KeyError(f"task list {name!r} is not configured")
