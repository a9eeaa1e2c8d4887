"""``detente bench`` as a script, with the same options.

Usage::

    python benchmarks/bench.py --quick --json out.json
"""

import sys

from detente.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
