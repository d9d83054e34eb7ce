"""`python -m bench` (make bench): the performance figures, quick mode unless --full (bench/perf.py)."""

import sys

from bench.perf import main

if __name__ == "__main__":
    sys.exit(main())
