"""Import the repo as the package ComfyUI would import, outside ComfyUI.

The pack uses relative imports (ComfyUI has its own top-level `nodes` module), so it
must be imported as a package. Its library is then also made importable as
`kling_omni`, by aliasing the very same module objects: a second copy would give
two classes of every error and break `except` clauses.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "cometapi_kling_omni"


def load_pack():
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = pack
    spec.loader.exec_module(pack)
    library = importlib.import_module(f"{PACK_NAME}.kling_omni")
    sys.modules["kling_omni"] = library
    for info in pkgutil.iter_modules(library.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"{PACK_NAME}.kling_omni.{info.name}")
        sys.modules[f"kling_omni.{info.name}"] = module
    return pack
