"""Put the web UI's front-end libraries into the package: `npm ci` installs exactly what
ui/package-lock.json pins (from the npm registry, integrity-checked), then the files the
pages load are copied into src/anabranch/server/ui/static/vendor/ (git-ignored).

Run by `make ui-assets` and by the wheel build (setup.py) when the files are missing.
Standard library only: it runs under any Python, including pip's isolated build environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

UI = Path(__file__).resolve().parent
ROOT = UI.parent
VENDOR = ROOT / "src" / "anabranch" / "server" / "ui" / "static" / "vendor"

# vendor file name -> file under ui/node_modules
FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "sse.js": "htmx-ext-sse/dist/sse.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("ui/build.py: npm is needed to install the UI's front-end libraries "
              "(node 18+ with npm); install it and run `make ui-assets` again.", file=sys.stderr)
        return 1
    subprocess.run(
        # --ignore-scripts: no package's install script runs (swagger-ui-dist has a telemetry
        # postinstall).
        [npm, "ci", "--prefix", str(UI), "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=ROOT,
        check=True,
    )
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        # copyfile, not copy2: the copies are newer than the lockfile, so make sees them built.
        shutil.copyfile(UI / "node_modules" / source, VENDOR / name)
        print(f"ui/build.py: {source} -> {(VENDOR / name).relative_to(ROOT)}")
    # Written last: the wheel build (setup.py) takes the folder as complete when it exists.
    (VENDOR / ".built").write_text("ui/build.py\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
