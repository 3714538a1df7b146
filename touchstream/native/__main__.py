"""`python -m touchstream.native build|clean|status`."""

from __future__ import annotations

import sys

from touchstream.native import __doc__ as usage
from touchstream.native import build, clean, stale, status


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "status"
    if action == "build":
        build()  # never fails the install: pure Python is a working engine
    elif action == "clean":
        clean()
        print("engine: pure Python")
    elif action == "status":
        print(f"engine: {status()}")
        return 1 if stale() else 0
    else:
        print(usage)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
