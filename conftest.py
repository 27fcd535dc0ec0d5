"""pytest: the checkout's root is a plain folder, not a package.

The root is the custom-node folder, so it holds the __init__.py ComfyUI imports. pytest would
make it a package and import that file under the checkout's folder name, which fails for the
usual `cometapi-kling-omni` (no Python name: its relative imports have no parent package). The
tests load the pack themselves, as ComfyUI does (scripts/load_pack.py). Outside the Registry
archive (.comfyignore)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


class _RootIsAFolder:
    # Registered as a plugin, not a conftest hook: pytest asks the root's parent folder how to
    # collect the root, and a conftest only answers for its own folder and below.
    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        return pytest.Dir.from_parent(parent, path=path) if path == ROOT else None


def pytest_configure(config):
    config.pluginmanager.register(_RootIsAFolder(), "cometapi-root-is-a-folder")
