"""`python -m recsys_core.cli` (what torchrun starts) is the same as `rectune`."""
import sys

from recsys_core.cli import main

sys.exit(main())
