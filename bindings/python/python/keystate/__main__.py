"""``python -m keystate ...`` runs the keystate CLI (see ``keystate._cli``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
