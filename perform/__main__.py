"""`python -m perform ...` is the `perform` command (see perform/cli.py)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
