"""connect_versions.py NAME... — the installed versions of those of the
named distributions that the running interpreter has, on one line; what
scripts/bench/connect.sh reports about the app servers Connect ran."""

import importlib.metadata
import sys

found = []
for name in sys.argv[1:]:
    try:
        found.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        pass
print(", ".join(found))
