"""Save and load nested state (dicts/lists of JSON values and numpy arrays) without pickle.

The state is written as one ``.npz`` file: every array becomes an entry ``a<i>``, and the nested structure, with
arrays replaced by ``{"__ndarray__": "a<i>"}``, is stored as UTF-8 JSON in the entry ``__state__``. Loading uses
``np.load(allow_pickle=False)``, so a state file can never execute code. Writes are atomic (temp file, then
``os.replace``); :func:`verify_state_file` reads a whole file back (zip CRC-32 per entry) and :func:`sha256_file`
gives the digest the run folder's manifest records (``distributed/run_folder.py``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_REF = "__ndarray__"


def _pack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a torch tensor, without importing torch here
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {_REF: name}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _pack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save object of type {type(obj).__name__} in a state file")


def _unpack(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_REF}:
            return arrays[obj[_REF]]
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def dumps_state(state: Any) -> bytes:
    """Serialise ``state`` to bytes (npz container)."""
    arrays: dict[str, np.ndarray] = {}
    meta = json.dumps(_pack(state, arrays), allow_nan=True).encode("utf-8")
    buffer = io.BytesIO()
    np.savez(buffer, __state__=np.frombuffer(meta, dtype=np.uint8), **arrays)
    return buffer.getvalue()


def loads_state(data: bytes, source: str = "<bytes>") -> Any:
    """Inverse of ``dumps_state``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile/numpy errors: say which file is bad
        raise ValueError(f"{source} is not a valid state file: {exc}") from exc
    if "__state__" not in arrays:
        raise ValueError(f"{source} is not a valid state file: no __state__ entry")
    meta = json.loads(arrays.pop("__state__").tobytes().decode("utf-8"))
    return _unpack(meta, arrays)


def ordinary_permissions(fd: int) -> None:
    """Give a ``tempfile.mkstemp`` file (private 0600) the permissions any new file gets under the umask: results
    and caches are ordinary data that other users and tools may read."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file and ``os.replace``: a reader (or a kill) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        ordinary_permissions(fd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_state(path: str | os.PathLike[str], state: Any) -> Path:
    """Atomically write ``state`` to ``path``."""
    return atomic_write_bytes(path, dumps_state(state))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in blocks: state files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_state_file(path: str | os.PathLike[str]) -> None:
    """Read every entry of a state file (the zip CRC-32 of each is checked): ``ValueError`` naming a bad file.

    Why: a truncated or corrupted state must be refused before a resume starts, not deep inside Tune.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is not a valid state file ({exc})") from None
    if bad is not None:
        raise ValueError(f"{path} is corrupted (bad CRC in entry {bad})")
    if "__state__.npy" not in names:
        raise ValueError(f"{path} is not a valid state file: no __state__ entry")


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read a state written by ``save_state``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state file {path} does not exist")
    return loads_state(path.read_bytes(), source=str(path))
