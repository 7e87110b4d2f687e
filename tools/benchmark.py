#!/usr/bin/env python
"""See detection/cli/benchmark.py; this file only makes `python tools/benchmark.py` work from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detection.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
