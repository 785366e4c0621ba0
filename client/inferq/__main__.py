"""`python -m inferq ...` (the same as the `inferq` command): see inferq/cli.py."""

import sys

from inferq.cli import main

sys.exit(main())
