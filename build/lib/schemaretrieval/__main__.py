"""``python -m schemaretrieval``: the same command as ``schemaretrieval``."""

import sys

from schemaretrieval.cli import main

sys.exit(main())
