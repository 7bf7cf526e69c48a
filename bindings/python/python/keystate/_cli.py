"""``python -m keystate ...``: run the ``keystate`` command line tool.

The CLI is a Rust binary of the ``keystate`` crate (``host/src/main.rs``), not
part of this extension module, so this finds that binary and runs it with the
same arguments (on POSIX it replaces this process: exit codes, prompts and
signals are the binary's). Where it looks, in order:

1. ``$KEYSTATE_CLI``, a path to the binary;
2. ``keystate`` on ``$PATH`` (e.g. after ``cargo install --path host``);
3. the cargo target directory this package was built in (``release/keystate``,
   then ``debug/keystate``): a checkout where ``cargo build`` was run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence

from . import _native

HELP = """\
usage: python -m keystate [--keystore PATH] [--json] <command> ...

Runs the keystate command line tool (a Rust binary built from this project's
host/ crate) with these arguments. It was not found: set KEYSTATE_CLI to its
path or put `keystate` on PATH. From a checkout of the project:

    cargo build --release -p keystate      # target/release/keystate
    cargo install --locked --path host     # or onto PATH

Looked in: {places}
"""


def candidates() -> List[str]:
    """Where the binary may be, in the order they are tried."""
    places = []
    env = os.environ.get("KEYSTATE_CLI")
    if env:
        places.append(env)
    on_path = shutil.which("keystate")
    if on_path:
        places.append(on_path)
    for profile in ("release", "debug"):
        places.append(os.path.join(_native.BUILD_TARGET_DIR, profile, "keystate"))
    return places


def find_cli() -> Optional[str]:
    """The first executable candidate (``$KEYSTATE_CLI``, if set, is the only one)."""
    if os.environ.get("KEYSTATE_CLI"):
        path = os.environ["KEYSTATE_CLI"]
        return path if os.access(path, os.X_OK) else None
    for path in candidates():
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cli = find_cli()
    if cli is None:
        help_wanted = not args or args[0] in ("-h", "--help", "help")
        out = sys.stdout if help_wanted and args else sys.stderr
        print(HELP.format(places=", ".join(candidates() or ["(nowhere)"])), file=out, end="")
        return 0 if help_wanted and args else 2
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(cli, [cli, *args])
    return subprocess.call([cli, *args])
