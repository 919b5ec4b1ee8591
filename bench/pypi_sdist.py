#!/usr/bin/env python3
"""pypi_sdist.py: downloads one source distribution from PyPI, checked
against the sha256 PyPI lists, without building anything (`pip download
--no-binary` would build the sdist's build dependencies, cmake among them,
from source just to read its metadata).

    python3 bench/pypi_sdist.py PACKAGE VERSION DIR   # prints DIR/<name>-<version>.tar.gz

A no-op when the archive is already in DIR. Standard library only; also
imported by .ci/llama-vocab.py.
"""

import hashlib
import json
import sys
import urllib.request
from pathlib import Path


def download(package: str, version: str, dest_dir: Path) -> Path:
    """Returns the path of PACKAGE==VERSION's sdist in DEST_DIR, downloading it if absent."""
    want = f"{package.replace('-', '_')}-{version}.tar.gz"
    archive = dest_dir / want
    if archive.is_file():
        return archive
    # PyPI's simple index (JSON form, PEP 691): what pip itself reads.
    req = urllib.request.Request(f"https://pypi.org/simple/{package}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
    sdist = next((f for f in files if f["filename"] == want), None)
    if sdist is None:
        sys.exit(f"pypi_sdist.py: PyPI lists no {want}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = archive.with_suffix(".part")
    print(f"pypi_sdist.py: downloading {sdist['url']} ({sdist.get('size', 0) / 1e6:.0f} MB)", file=sys.stderr)
    urllib.request.urlretrieve(sdist["url"], part)
    want_sha = sdist.get("hashes", {}).get("sha256")
    if want_sha and hashlib.sha256(part.read_bytes()).hexdigest() != want_sha:
        part.unlink()
        sys.exit(f"pypi_sdist.py: {want}: sha256 differs from PyPI's")
    part.rename(archive)
    return archive


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: pypi_sdist.py PACKAGE VERSION DIR")
    print(download(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
