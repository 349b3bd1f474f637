"""SWF faults: each maps to an HTTP 400 reply whose `__type` botocore turns into an exception class."""

from __future__ import annotations


class SwfFault(Exception):
    """A fault that SWF returns to the caller; the class name is the SWF error code."""

    type_prefix = "com.amazonaws.swf.base.model#"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__

    def to_body(self) -> dict[str, str]:
        return {"__type": self.type_prefix + self.code, "message": self.message}


class UnknownResourceFault(SwfFault):
    pass


class TypeAlreadyExistsFault(SwfFault):
    pass


class DomainAlreadyExistsFault(SwfFault):
    pass


class DefaultUndefinedFault(SwfFault):
    pass


class TypeDeprecatedFault(SwfFault):
    pass


class DomainDeprecatedFault(SwfFault):
    pass


class OperationNotPermittedFault(SwfFault):
    pass


class LimitExceededFault(SwfFault):
    pass


class WorkflowExecutionAlreadyStartedFault(SwfFault):
    pass


class TypeNotDeprecatedFault(SwfFault):
    pass


class TooManyTagsFault(SwfFault):
    pass


class ValidationException(SwfFault):
    type_prefix = "com.amazon.coral.validate#"


class UnknownOperationException(SwfFault):
    type_prefix = "com.amazon.coral.service#"


class SerializationException(SwfFault):
    type_prefix = "com.amazon.coral.service#"
