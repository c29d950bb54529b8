"""Build hook only (the project is described in pyproject.toml): a wheel or sdist built from
a checkout gets the web UI's front-end libraries, made by ui/build.py (npm ci from the
lockfile) when src/anabranch/server/ui/static/vendor/ lacks them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
VENDOR = ROOT / "src" / "anabranch" / "server" / "ui" / "static" / "vendor"


def ensure_ui_assets() -> bool:
    """Make the files if missing; True if they were made now."""
    script = ROOT / "ui" / "build.py"
    # ui/build.py writes .built last; an sdist carries the files without it.
    if (VENDOR / ".built").is_file() or (VENDOR / "htmx.min.js").is_file():
        return False
    if not script.is_file():
        raise SystemExit(f"The UI's front-end libraries are missing from {VENDOR} and "
                         f"{script} is not here to make them.")
    subprocess.run([sys.executable, str(script)], cwd=ROOT, check=True)
    return True


class BuildPyWithUiAssets(build_py):
    def run(self) -> None:
        if ensure_ui_assets():
            # The folders are new since setuptools listed the (namespace) packages: list them
            # too, as it would have, so their files are package data without a warning.
            for package in ("anabranch.server.ui.static", "anabranch.server.ui.static.vendor"):
                if self.packages is not None and package not in self.packages:
                    self.packages.append(package)
        super().run()


class SdistWithUiAssets(sdist):
    def run(self) -> None:
        ensure_ui_assets()
        super().run()


setup(cmdclass={"build_py": BuildPyWithUiAssets, "sdist": SdistWithUiAssets})
