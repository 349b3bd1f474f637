"""Exit codes that tell the manager why a worker process ended.

The manager restarts a worker that exited with EXECUTION_CLOSED or RECYCLE at once,
without crash-loop backoff, and does not count the exit as a crash.
"""

OK = 0
# Invalid configuration or arguments: restarting cannot help.
CONFIG_ERROR = 2
# SWF returned UnknownResourceFault for the task in hand: the execution closed or the
# task timed out. The work was stopped and logged.
EXECUTION_CLOSED = 75
# The worker reached its maximum task count or memory and exits to be replaced.
RECYCLE = 76

# A second SIGTERM or SIGINT: the running task was handed back to SWF and the process
# exited at once, as 128 + SIGTERM.
ABORTED = 143

CLEAN_RESTART_CODES = frozenset({EXECUTION_CLOSED, RECYCLE})
