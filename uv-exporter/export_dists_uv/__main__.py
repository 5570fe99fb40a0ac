"""`python -m export_dists_uv`: the same as the `export-dists-uv` console script."""
from __future__ import annotations

import sys

from export_dists_uv.cli import main

sys.exit(main())
