"""Fashion-MNIST (70,000 real 28x28 grey images, 10 classes) from Debian's ``dataset-fashion-mnist`` package.

Nothing is downloaded from arbitrary hosts: the IDX files come from the distribution's package, either installed
(``/usr/share/datasets/fashion-mnist``) or, on a machine without it, fetched with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` into the user cache (no root needed). ``SEMINAS_DATA_DIR/fashion-mnist`` also works, for
clusters that share a data folder instead. The IDX files are parsed with numpy (big-endian header), and a file that
is not what it claims is refused with a one-line error that names it.

``python -m seminas_ray.tasks.imagenet.fashion_mnist --fetch`` makes sure the files are there (``make`` runs it).
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from seminas_ray import settings

PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_NAME = "fashion_mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x00000803 (ubyte, 3 dims), 0x00000801 (ubyte, 1 dim)

# IDX type codes (third magic byte) -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _open(path: Path) -> BinaryIO:
    """gzip'd or plain, by the first two bytes (not the name): a renamed file still reads."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def _read_exact(fh: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: truncated IDX file ({what}: expected {n} bytes, found {len(data)})")
    return data


def read_idx(path: str | Path, limit: int | None = None, magic: int | None = None) -> np.ndarray:
    """The array in IDX file ``path`` (gzip'd or plain); only its first ``limit`` records when given.

    ``magic`` (e.g. ``IMAGES_MAGIC``) is the expected 4-byte big-endian magic number. Without ``limit`` the whole
    file must be exactly header + data; with it, the first ``min(limit, n)`` records must be there.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such IDX file")
    try:
        with _open(path) as fh:
            head = _read_exact(fh, 4, path, "magic")
            found = int.from_bytes(head, "big")
            if head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
                raise ValueError(f"{path}: not an IDX file (magic 0x{found:08x})")
            if magic is not None and found != magic:
                raise ValueError(f"{path}: IDX magic 0x{found:08x}, expected 0x{magic:08x}")
            dims = np.frombuffer(_read_exact(fh, 4 * head[3], path, "dimensions"), dtype=">u4").astype(np.int64)
            dtype = _IDX_DTYPES[head[2]]
            count = int(dims[0]) if limit is None else min(int(limit), int(dims[0]))
            shape = (count, *(int(d) for d in dims[1:]))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            data = _read_exact(fh, nbytes, path, "data")
            if limit is None and fh.read(1):
                raise ValueError(f"{path}: IDX file longer than its header says ({tuple(int(d) for d in dims)})")
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: unreadable IDX file ({exc})") from exc
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_split(root: str | Path, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 28, 28)`` uint8 and labels ``(n,)`` int64 of ``split`` ("train" or "test") in folder ``root``."""
    if split not in FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; choose one of {sorted(FILES)}")
    image_file, label_file = (_find(Path(root), name) for name in FILES[split])
    images = read_idx(image_file, limit, magic=IMAGES_MAGIC)
    labels = read_idx(label_file, limit, magic=LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{image_file}: {len(images)} images but {label_file.name} has {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise ValueError(f"{label_file}: label {int(labels.max())} outside the {len(CLASSES)} classes")
    return images.astype(np.uint8), labels.astype(np.int64)


def _find(root: Path, name: str) -> Path:
    """``name`` in ``root``, gzip'd or already unpacked."""
    for candidate in (root / name, root / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{root / name}: Fashion-MNIST file not found")


def _complete(root: Path) -> bool:
    names = [n for pair in FILES.values() for n in pair]
    return all((root / n).is_file() or (root / n.removesuffix(".gz")).is_file() for n in names)


def candidate_dirs() -> list[Path]:
    """Where the files may already be: the installed package, the shared data folder, the user cache."""
    dirs = [SYSTEM_DIR]
    shared = settings.data_dir()
    if shared is not None:
        dirs.append(shared / "fashion-mnist")
    dirs.append(settings.cache_dir(CACHE_NAME))
    return dirs


def locate() -> Path | None:
    """The first folder holding all four IDX files, or ``None``."""
    return next((d for d in candidate_dirs() if _complete(d)), None)


def fetch(cache: Path | None = None) -> Path:
    """Download Debian's package with ``apt-get download`` and unpack its IDX files into ``cache`` (no root)."""
    cache = Path(cache) if cache is not None else settings.cache_dir(CACHE_NAME)
    cache.mkdir(parents=True, exist_ok=True)
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"Fashion-MNIST not found in {SYSTEM_DIR} or {cache}, and {' and '.join(missing)} "
                           f"is unavailable to fetch Debian's {PACKAGE}: copy its IDX files into {cache}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        try:
            _run(["apt-get", "download", PACKAGE], cwd=tmp)
        except RuntimeError:
            if os.geteuid() != 0:
                raise
            # a fresh machine may have no package lists yet: read them once (root only) and try again
            _run(["apt-get", "update"], cwd=tmp)
            _run(["apt-get", "download", PACKAGE], cwd=tmp)
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {PACKAGE} left no .deb in {tmp}")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(Path(tmp) / "root")], cwd=tmp)
        unpacked = Path(tmp) / "root" / SYSTEM_DIR.relative_to("/")
        if not _complete(unpacked):
            raise RuntimeError(f"{debs[-1]}: the package has no IDX files under {SYSTEM_DIR}")
        for name in (n for pair in FILES.values() for n in pair):
            os.replace(unpacked / name, cache / name)  # one rename each: a concurrent reader never sees half a file
    return cache


def _run(cmd: list[str], cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {tail[0]} "
                           f"(try `apt-get update`, or install {PACKAGE})")


def locate_or_fetch() -> Path:
    """The folder with the four IDX files: an existing copy if there is one, else a fresh fetch into the cache."""
    found = locate()
    return found if found is not None else fetch()


def main(argv: list[str] | None = None) -> int:
    """``--fetch``: make sure the files are present and print where (for ``make`` on a fresh machine)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="find the IDX files or fetch Debian's package")
    args = parser.parse_args(argv)
    if not args.fetch:
        parser.print_help()
        return 0
    root = locate_or_fetch()
    images, labels = load_split(root, "test", limit=16)  # a cheap check that the files parse
    print(f"Fashion-MNIST: {root} (images {images.shape[1]}x{images.shape[2]}, {len(CLASSES)} classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
