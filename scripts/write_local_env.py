#!/usr/bin/env python3
"""Write the git-ignored `.env` of a development checkout, once: DEBUG=1 and a freshly
generated SECRET_KEY, which agentwallet/settings.py reads (the real environment wins).

`make run` calls this, so that every command in the README works in the checkout
afterwards. An existing file is never touched: run it as often as you like, and delete
`.env` to start over. Production has no `.env`, so it still refuses to start without a
SECRET_KEY of its own.

Usage: scripts/write_local_env.py [PATH]   (default: .env at the repository root)
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = """\
# Local development settings, written once by `make run` (scripts/write_local_env.py).
# Git-ignored; the real environment wins over it. Delete this file to start over.
DEBUG=1
SECRET_KEY={secret_key}
"""


def write_local_env(path: Path) -> bool:
    """Create `path` (owner-only) unless it exists; True when it was written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as env_file:
        env_file.write(TEMPLATE.format(secret_key=secrets.token_urlsafe(50)))
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    if write_local_env(path):
        print(f"wrote {path} (DEBUG=1 and a new SECRET_KEY) for local development")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
