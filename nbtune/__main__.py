"""``python -m nbtune`` (and ``accelerate launch -m nbtune``) runs the command line."""

import sys

from nbtune.cli import main

sys.exit(main())
