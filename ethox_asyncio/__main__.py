"""``python -m ethox_asyncio`` — the command-line interface (see cli.py)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
