"""localswf: an Amazon SWF endpoint that keeps its state in one SQLite file."""

from localswf.cli import main

__all__ = ["main"]
