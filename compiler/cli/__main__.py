"""`python -m xtrc.cli`: the `xtrc` command."""

import sys

from xtrc.cli import main

sys.exit(main())
