"""``python -m gsibench``: the command line, as the ``gsibench`` script runs it."""

import sys

from gsibench.cli import main

sys.exit(main())
