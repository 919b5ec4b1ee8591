#!/usr/bin/env python3
"""llama-vocab.py: fills <cache>/llama.cpp-vocab with llama.cpp's tokenizer
test vectors (models/ggml-vocab-*.gguf with their .inp/.out files), which
compiler/tests/tokenizer_llama_vectors.rs runs. They come from the tree that
the PyPI sdist llama-cpp-python==0.3.36 vendors (the same llama.cpp
bench/compare-llama-cpp.sh builds), downloaded straight from PyPI: no build
step runs. A no-op when the folder is already filled. Standard library only.
Cache: FLEXC_CACHE_DIR, else $XDG_CACHE_HOME/flexc, else ~/.cache/flexc.
"""

import os
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import pypi_sdist  # noqa: E402

PACKAGE, VERSION = "llama-cpp-python", "0.3.36"
PREFIX = "vendor/llama.cpp/models/ggml-vocab-"


def cache_root():
    if os.environ.get("FLEXC_CACHE_DIR"):
        return Path(os.environ["FLEXC_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flexc"


def main():
    dest = cache_root() / "llama.cpp-vocab"
    if dest.is_dir() and any(dest.glob("ggml-vocab-*.gguf.out")):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        archive = pypi_sdist.download(PACKAGE, VERSION, Path(tmp))
        out = Path(tmp) / "llama.cpp-vocab"
        out.mkdir()
        n = 0
        with tarfile.open(archive) as tar:
            for m in tar:
                name = m.name.split("/", 1)[-1]
                if m.isfile() and name.startswith(PREFIX):
                    src = tar.extractfile(m)
                    (out / Path(name).name).write_bytes(src.read())
                    n += 1
        if n == 0:
            sys.exit(f"llama-vocab.py: no {PREFIX}* files in {archive.name}")
        if dest.exists():
            sys.exit(f"llama-vocab.py: {dest} exists without vectors; remove it and run again")
        out.rename(dest)
        print(f"llama-vocab.py: {n} files in {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
