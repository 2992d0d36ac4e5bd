"""What the examples need beyond gru_cy, checked before anything is imported: a
missing package is named with the command that installs it, instead of a traceback."""

import importlib.util
import os
import sys

INSTALL = 'pip install "gru_cy[examples]"   (from a clone: pip install ".[examples]")'


def need(**packages):
    """Exit with a message unless every module is importable; keyword: the module's
    import name, value: the name of the package that provides it."""
    missing = [package for module, package in packages.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        script = os.path.basename(sys.argv[0]) or "this example"
        sys.exit(f"{script} needs {' and '.join(missing)}, which is not installed:\n"
                 f"    {INSTALL}\n"
                 f"or: pip install {' '.join(missing)}")
