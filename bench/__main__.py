"""``python -m bench [--only core,http] [--record NAME] [--trials N]``: see bench/harness.py."""

import sys

from bench.harness import main

sys.exit(main())
