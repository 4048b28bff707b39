"""`python -m avdisentangle ...` and the `avdisentangle` console script."""

import sys

from avdisentangle.cli import main

if __name__ == "__main__":
    sys.exit(main())
