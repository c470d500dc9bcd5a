"""Puts the repository root and ``tools/`` on ``sys.path`` so a benchmark runs as
``python benchmarks/<name>.py`` and can call a tool's ``main``."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tools", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
