"""Exceptions shared by deciders, activity workers and activity handlers."""


class PermanentError(Exception):
    """An activity failure that a retry cannot fix, such as invalid input or a corrupt file.

    The activity worker fails the task with "retry": false, and the decider fails the
    workflow at once.
    """


class TaskCancelled(Exception):
    """SWF set cancelRequested on a heartbeat, so the handler must stop its work."""


class ExecutionClosed(Exception):
    """SWF returned UnknownResourceFault: the execution closed or the task timed out.

    The worker stops the task, logs it with its ids and exits with
    ``exitcodes.EXECUTION_CLOSED`` so the manager starts a fresh process.
    """
