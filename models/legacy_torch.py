"""Read a PyTorch *legacy* (pre-1.6, non-zip) state_dict file without torch.

Why: the MiniFASNet weights are published only as `.pth` files in torch's legacy
serialization, and torch (~800 MB) must not enter the service's environment just to read
~2 MB of floats once, at model installation time.

The legacy layout is a sequence of pickles followed by raw bytes:

1. the magic number 0x1950a86a20f9469cfc6c,
2. the protocol version (1001),
3. a dict of system info (endianness, type sizes),
4. the object itself (here an OrderedDict name -> tensor); every tensor is pickled as
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, where `storage`
   is a persistent id ("storage", <type, e.g. torch.FloatStorage>, key, location, numel,
   view_metadata),
5. the list of storage keys, in the order their data follows,
6. for each key: an 8-byte little-endian element count, then the raw little-endian data.

These are pickles, so the unpickler resolves only the handful of globals the format uses
and refuses anything else (a pickle naming e.g. `os.system` raises before it can run).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage class name -> little-endian numpy dtype
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyFormatError(ValueError):
    """The file is not a torch legacy state_dict this reader understands (or is unsafe)."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """A storage named in the pickle; its data arrives after the pickles are read."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _View:
    """A view on a storage (legacy `view_metadata`), resolved once the data is read."""

    base: _Storage
    offset: int  # in elements
    numel: int


@dataclass
class _PendingTensor:
    storage: _Storage | _View
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       *extra: Any) -> _PendingTensor:
    if not isinstance(storage, (_Storage, _View)):
        raise LegacyFormatError(f"tensor rebuilt from a non-storage object {type(storage)}")
    return _PendingTensor(storage, int(storage_offset), tuple(int(s) for s in size),
                          tuple(int(s) for s in stride))


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any) -> _PendingTensor:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh: io.BufferedIOBase, storages: dict[str, _Storage]) -> None:
        super().__init__(fh, encoding="utf-8")
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise LegacyFormatError(
                f"refusing to load global {module}.{name}: not part of a torch legacy "
                "state_dict (only tensors in an OrderedDict are accepted)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage | _View:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise LegacyFormatError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise LegacyFormatError(f"unsupported storage type {storage_type!r:.80}")
        key = str(key)
        base = self._storages.get(key)
        if base is None:
            base = _Storage(key, storage_type.dtype, int(numel))
            self._storages[key] = base
        if view_metadata is not None:
            _view_key, offset, view_numel = view_metadata
            return _View(base, int(offset), int(view_numel))
        return base


def _load_pickle(fh: io.BufferedIOBase, storages: dict[str, _Storage]) -> Any:
    return _RestrictedUnpickler(fh, storages).load()


def _materialise(t: _PendingTensor) -> np.ndarray:
    flat: np.ndarray | None
    if isinstance(t.storage, _View):
        base = t.storage.base.data
        assert base is not None
        flat = base[t.storage.offset:t.storage.offset + t.storage.numel]
    else:
        flat = t.storage.data
    assert flat is not None
    if len(t.size) != len(t.stride):
        raise LegacyFormatError(f"tensor size {t.size} and stride {t.stride} disagree")
    if not t.size:  # a 0-d tensor
        return np.array(flat[t.offset])
    needed = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True)) + 1
    if any(n == 0 for n in t.size):
        return np.zeros(t.size, flat.dtype)
    if needed > flat.size or t.offset < 0 or any(s < 0 for s in t.stride):
        raise LegacyFormatError(f"tensor {t.size} / {t.stride} overruns its storage")
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[t.offset:], shape=t.size, strides=tuple(s * item for s in t.stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def load_legacy_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """Return {parameter name: array} from a torch legacy `.pth` state_dict.

    A DataParallel `module.` prefix is stripped. Arrays are native-endian copies (float32
    for the weights, int64 for BatchNorm's `num_batches_tracked`).
    """
    path = Path(path)
    with path.open("rb") as fh:
        if fh.read(2) == b"PK":
            raise LegacyFormatError(
                f"{path} is a torch zip-format checkpoint, not the legacy format"
            )
        fh.seek(0)
        storages: dict[str, _Storage] = {}
        try:
            magic = _load_pickle(fh, storages)
            if magic != MAGIC_NUMBER:
                raise LegacyFormatError(f"{path}: bad magic number, not a torch legacy file")
            protocol = _load_pickle(fh, storages)
            if protocol != PROTOCOL_VERSION:
                raise LegacyFormatError(f"{path}: unsupported protocol version {protocol}")
            sys_info = _load_pickle(fh, storages)
            if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
                raise LegacyFormatError(f"{path}: only little-endian files are supported")
            obj = _load_pickle(fh, storages)
            keys = _load_pickle(fh, storages)
        except (pickle.UnpicklingError, EOFError) as exc:
            raise LegacyFormatError(f"{path}: not a torch legacy file ({exc})") from exc
        if not isinstance(obj, dict):
            raise LegacyFormatError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise LegacyFormatError(f"{path}: storage key list does not match the tensors")
        for key in keys:
            storage = storages[str(key)]
            header = fh.read(8)
            if len(header) != 8:
                raise LegacyFormatError(f"{path}: truncated before storage {key}")
            (numel,) = struct.unpack("<q", header)
            if numel != storage.numel:
                raise LegacyFormatError(
                    f"{path}: storage {key} has {numel} elements, the pickle said "
                    f"{storage.numel}"
                )
            raw = fh.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise LegacyFormatError(f"{path}: truncated inside storage {key}")
            storage.data = np.frombuffer(raw, storage.dtype).astype(
                storage.dtype.newbyteorder("="), copy=True
            )
    result: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(value, _PendingTensor):
            raise LegacyFormatError(f"{path}: entry {name!r} is not a tensor")
        name = str(name)
        name = name.removeprefix("module.")
        result[name] = _materialise(value)
    return result
