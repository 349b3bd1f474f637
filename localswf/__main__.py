import sys

from localswf.cli import main

sys.exit(main())
