#!/usr/bin/env python
"""See detection/cli/train.py; this file only makes `python tools/train_det.py` work from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detection.cli.train import main  # noqa: E402

if __name__ == "__main__":
    main()
