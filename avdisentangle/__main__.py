"""`python -m avdisentangle ...` and the `avdisentangle` console script.

`main` imports the command line when it runs, not when this module is imported: spawn starts a
pool worker by running the parent's main script again, and the console script imports this
module, so every worker of `prepare` paid the command line's imports (torch, Lightning: ~7 s of
CPU each) that it never uses.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    from avdisentangle.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
