"""``python -m detente.cli``: the ``detente`` command, for a Python without the script on its path."""

import sys

from detente.cli import main

sys.exit(main())
