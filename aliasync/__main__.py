"""``python -m aliasync``."""

from __future__ import annotations

import sys

from aliasync._cli import main

sys.exit(main())
