"""``python -m aliasync``."""

from __future__ import annotations

import sys

from aliasync.cli._main import main

sys.exit(main())
