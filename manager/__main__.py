"""Run the manager CLI with ``python -m manager``."""

from manager.cli import main

raise SystemExit(main())
