"""`python -m recsys_core` is the same as `rectune`."""
import sys

from recsys_core.cli import main

sys.exit(main())
