"""Read (and, for tests, write) PyTorch ``state_dict`` files without importing torch.

Why: the standard FID network is pytorch-fid's InceptionV3, whose weights ship as a ``torch.save`` file
(``pt_inception-2015-12-05-6726825d.pth``). gen_jax does not depend on PyTorch, so this module reads both
serialization formats directly:

* zip format (``torch.save`` since torch 1.6): a zip archive ``<prefix>/data.pkl`` (the object, pickled with
  protocol 2) plus one raw little-endian storage per tensor at ``<prefix>/data/<key>``; ``<prefix>`` is the
  file's stem when torch wrote it (``archive`` for buffers), so the loader finds the single ``*/data.pkl``.
* legacy format (torch < 1.6, or ``_use_new_zipfile_serialization=False``): five consecutive pickles -- the magic
  number 0x1950a86a20f9469cfc6c, the protocol version 1001, a ``sys_info`` dict, the object, the sorted list of
  storage keys -- then, for each key in that order, an int64 element count followed by the raw storage bytes.
  pytorch-fid's weights were published in May 2019 (its PR #16), more than a year before torch 1.6 made zip the
  default, so this is very likely their format (not checked on the file itself: it is not downloaded here).

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks[, metadata])`` and its storage as the persistent id
``('storage', torch.<Type>Storage, key, location, numel[, view_metadata])``. Strides and offsets are in elements.

Safety: unpickling runs a restricted ``Unpickler`` whose ``find_class`` resolves only the names a plain
state_dict needs (the tensor rebuild functions, the storage types, ``collections.OrderedDict``); any other global
(``os.system``, a model class, ...) is refused with a :class:`~gen_jax.errors.CheckpointError` before anything
runs. Storages load as numpy arrays on the host whatever their saved device ('cuda:0' included).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Mapping

import ml_dtypes  # a jax dependency: numpy's bfloat16
import numpy as np

from gen_jax.errors import CheckpointError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> numpy dtype (little-endian, as torch writes on every platform it supports).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_STORAGE_NAMES = {dtype: name for name, dtype in STORAGE_DTYPES.items()}


# ----------------------------------------------------------------------------------------------- reading


class _Storage:
  """A storage named in the pickle; its data is filled in after unpickling (legacy files store it after)."""

  def __init__(self, key: str, dtype: np.dtype, numel: int):
    self.key, self.dtype, self.numel = key, dtype, int(numel)
    self.data: np.ndarray | None = None


class _StorageView:
  """A legacy storage view (torch < 0.4 files): ``size`` elements of ``root`` from ``offset``."""

  def __init__(self, root: _Storage, offset: int, size: int):
    self.root, self.offset, self.size = root, int(offset), int(size)
    self.dtype = root.dtype


class _Tensor:
  """A tensor to build once its storage is read: offsets and strides in elements, as torch pickles them."""

  def __init__(self, storage: _Storage | _StorageView, offset: int, size: tuple, stride: tuple):
    if not isinstance(storage, (_Storage, _StorageView)):
      raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a storage: the file is not "
                            "a plain PyTorch state_dict; re-save it with torch.save(model.state_dict(), path)")
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

  def to_numpy(self, name: str) -> np.ndarray:
    storage, offset = self.storage, self.offset
    if isinstance(storage, _StorageView):
      offset += storage.offset
      storage, limit = storage.root, storage.offset + storage.size
    else:
      limit = storage.numel
    flat = storage.data
    if flat is None:
      raise CheckpointError(f"tensor {name!r}: storage {storage.key!r} has no data in the file (truncated file?); "
                            "download or save the file again")
    if len(self.size) != len(self.stride) or any(s < 0 for s in self.stride):
      raise CheckpointError(f"tensor {name!r}: size {self.size} and stride {self.stride} are inconsistent")
    if any(s == 0 for s in self.size):
      return np.zeros(self.size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if offset < 0 or last >= limit:
      raise CheckpointError(f"tensor {name!r}: offset {offset}, size {self.size}, stride {self.stride} reach "
                            f"element {last} of a storage of {limit}; the file is corrupt, download it again")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=self.size,
                                           strides=tuple(s * flat.itemsize for s in self.stride), writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  del requires_grad, backward_hooks, metadata
  return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
  del requires_grad, backward_hooks, unused
  return data


class _StorageType:
  """Stands for ``torch.<name>Storage`` inside the pickle; never called."""

  def __init__(self, name: str):
    self.name, self.dtype = name, STORAGE_DTYPES[name]


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
    # torch < 1.6 pickled a GPU tensor's storage as torch.cuda.<Type>Storage (location 'cuda:<i>').
    **{("torch.cuda", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the globals of a plain state_dict; storages become ``_Storage`` placeholders."""

  def __init__(self, file: BinaryIO, storages: dict[str, _Storage], source: str):
    super().__init__(file, encoding="latin1")
    self._storages, self._source = storages, source

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise CheckpointError(
          f"{self._source}: the pickle names the global {module}.{name}, which a plain PyTorch state_dict never "
          "needs; refusing to load it (unpickling could run arbitrary code). If you trust the file, re-save it "
          "from PyTorch as torch.save(model.state_dict(), path).") from None

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or _ascii(pid[0]) != "storage":
      raise CheckpointError(f"{self._source}: unknown persistent id {pid!r}; only tensor storages are supported")
    storage_type, key, numel = pid[1], _ascii(pid[2]), pid[4]
    if not isinstance(storage_type, _StorageType):
      raise CheckpointError(f"{self._source}: persistent id names {storage_type!r}, not a torch storage type")
    storage = self._storages.get(key)
    if storage is None:
      storage = self._storages[key] = _Storage(key, storage_type.dtype, numel)
    view = pid[5] if len(pid) == 6 else None
    if view is not None:
      _, offset, size = view
      return _StorageView(storage, offset, size)
    return storage


def _ascii(value: Any) -> Any:
  return value.decode("ascii") if isinstance(value, bytes) else value


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """{name: numpy array} from a ``torch.save`` file (zip or legacy format), without importing torch.

  Nested mappings are flattened with '.' (``{'model': {'w': t}}`` -> ``'model.w'``); entries that are not tensors
  (ints, strings, ...) are dropped. Arrays are host numpy arrays in native byte order, C-contiguous.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"no PyTorch weights file at {path}; check the path")
  if zipfile.is_zipfile(path):
    obj, storages = _load_zip(path)
  else:
    obj, storages = _load_legacy(path)
  del storages
  out: dict[str, np.ndarray] = {}
  _flatten(obj, "", out, path)
  return out


def _load_zip(path: str) -> tuple[Any, dict[str, _Storage]]:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise CheckpointError(f"{path} is a zip archive without exactly one '<name>/data.pkl' "
                            f"(found {pickles or 'none'}): not a torch.save file (a TorchScript or other archive?)")
    prefix = pickles[0][: -len("data.pkl")]
    order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
    if order != "little":
      raise CheckpointError(f"{path} was written on a {order}-endian machine; re-save it on a little-endian one")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages, path).load()
    for key, storage in storages.items():
      record = f"{prefix}data/{key}"
      if record not in names:
        raise CheckpointError(f"{path}: storage record {record} is missing; the file is truncated, save it again")
      raw = archive.read(record)
      storage.data = _storage_array(raw, storage, path)
  return obj, storages


def _load_legacy(path: str) -> tuple[Any, dict[str, _Storage]]:
  with open(path, "rb") as f:
    try:
      magic = pickle.load(f)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means "not this format"
      raise CheckpointError(f"{path} is neither a zip nor a legacy torch.save file ({e}); "
                            "is it really a PyTorch .pth state_dict?") from e
    if magic != MAGIC_NUMBER:
      raise CheckpointError(f"{path}: wrong magic number {magic!r}; not a torch.save file (or a pre-0.4 tar file, "
                            "which is not supported: re-save it with a recent torch)")
    version = pickle.load(f)
    if version != PROTOCOL_VERSION:
      raise CheckpointError(f"{path}: unsupported legacy protocol version {version} (expected {PROTOCOL_VERSION})")
    sys_info = pickle.load(f)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
      raise CheckpointError(f"{path} was written on a big-endian machine; re-save it on a little-endian one")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages, path).load()
    keys = pickle.load(f)
    if not isinstance(keys, list):
      raise CheckpointError(f"{path}: the storage key list is a {type(keys).__name__}; the file is corrupt")
    for key in keys:
      key = _ascii(key)
      storage = storages.get(key)
      if storage is None:
        raise CheckpointError(f"{path}: storage {key!r} is listed but no tensor uses it; the file is corrupt")
      header = f.read(8)
      if len(header) != 8:
        raise CheckpointError(f"{path}: file ends before storage {key!r}; the download is truncated")
      (numel,) = struct.unpack("<q", header)
      raw = f.read(numel * storage.dtype.itemsize)
      storage.numel = numel
      storage.data = _storage_array(raw, storage, path)
  return obj, storages


def _storage_array(raw: bytes, storage: _Storage, path: str) -> np.ndarray:
  expected = storage.numel * storage.dtype.itemsize
  if len(raw) != expected:
    raise CheckpointError(f"{path}: storage {storage.key!r} holds {len(raw)} bytes, expected {expected} "
                          f"({storage.numel} x {storage.dtype}); the file is truncated or corrupt")
  return np.frombuffer(raw, dtype=storage.dtype)


def _flatten(obj: Any, prefix: str, out: dict[str, np.ndarray], path: str) -> None:
  if isinstance(obj, _Tensor):
    out[prefix] = obj.to_numpy(prefix)
  elif isinstance(obj, Mapping):
    for key, value in obj.items():
      _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, path)
  elif not prefix:
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict (a mapping of tensors)")


# ----------------------------------------------------------------------------------------------- writing


class _Global:
  """A reference to ``module.name`` written as a pickle GLOBAL without importing the module (torch)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):  # pickle's save_reduce only checks that the function is callable
    raise TypeError("placeholder for pickling only")


class _TensorOut:
  """A tensor to pickle: reduces to torch's _rebuild_tensor_v2 on its storage."""

  def __init__(self, storage: "_StorageOut", offset: int, shape: tuple, stride: tuple):
    self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

  def __reduce__(self):
    return (_REBUILD, (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _StorageOut:
  def __init__(self, key: str, flat: np.ndarray, location: str):
    self.key, self.flat, self.location = key, flat, location
    module = "torch.cuda" if location.startswith("cuda") else "torch"
    self.type = _Global(module, _STORAGE_NAMES[flat.dtype.newbyteorder("<")])


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler lets us add a dispatch entry for _Global
  dispatch = dict(pickle._Pickler.dispatch)

  def __init__(self, file: BinaryIO, legacy: bool):
    super().__init__(file, protocol=2)
    self._legacy = legacy

  def persistent_id(self, obj):
    if isinstance(obj, _StorageOut):
      pid = ("storage", obj.type, obj.key, obj.location, int(obj.flat.size))
      return pid + (None,) if self._legacy else pid
    return None

  def _save_global_ref(self, obj: _Global) -> None:
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
    self.memoize(obj)

  dispatch[_Global] = _save_global_ref


def _storages_for(arrays: Mapping[str, np.ndarray], location: str
                  ) -> tuple[dict[str, _TensorOut], list[_StorageOut]]:
  """One storage per distinct base buffer: numpy views of a shared base keep their offset and strides."""
  storages: dict[int, _StorageOut] = {}
  tensors: dict[str, _TensorOut] = {}
  for name, value in arrays.items():
    a = np.asarray(value)
    if a.dtype.newbyteorder("<") not in _STORAGE_NAMES:
      raise CheckpointError(f"tensor {name!r} has dtype {a.dtype}, which torch storages do not cover; "
                            f"use one of {sorted(str(d) for d in _STORAGE_NAMES)}")
    itemsize = a.dtype.itemsize
    root = a
    while isinstance(root.base, np.ndarray):
      root = root.base
    start, strides = 0, a.strides
    shared = (root.dtype == a.dtype and a.dtype.newbyteorder("<") == a.dtype and root.flags.c_contiguous)
    if shared:
      start = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
      shared = start % itemsize == 0 and all(s >= 0 and s % itemsize == 0 for s in strides)
    if not shared:  # a fresh contiguous little-endian copy, in a storage of its own
      root = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
      start, strides = 0, root.strides
    storage = storages.get(id(root))
    if storage is None:
      storage = storages[id(root)] = _StorageOut(str(len(storages)), root.reshape(-1), location)
    tensors[name] = _TensorOut(storage, start // itemsize, tuple(a.shape), tuple(s // itemsize for s in strides))
  return tensors, list(storages.values())


def save_state_dict(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], format: str = "zip",
                    location: str = "cpu") -> None:
  """Write ``arrays`` as a file ``torch.load`` reads as an OrderedDict of tensors (used by tests).

  ``format``: 'zip' (torch >= 1.6) or 'legacy'. Arrays that are numpy views of one C-contiguous base (same dtype,
  non-negative strides) share one storage and keep their storage offset and strides, as torch views do.
  ``location`` 'cuda:0' records the storages as GPU ones, as old torch did (torch.cuda.<Type>Storage).
  """
  if format not in ("zip", "legacy"):
    raise ValueError(f"format must be 'zip' or 'legacy', got {format!r}")
  tensors, storages = _storages_for(arrays, location)
  state = collections.OrderedDict(tensors)
  buf = io.BytesIO()
  _TorchPickler(buf, legacy=format == "legacy").dump(state)
  path = os.fspath(path)
  if format == "zip":
    prefix = os.path.splitext(os.path.basename(path))[0] or "archive"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
      archive.writestr(f"{prefix}/data.pkl", buf.getvalue())
      archive.writestr(f"{prefix}/byteorder", "little")
      for storage in storages:
        archive.writestr(f"{prefix}/data/{storage.key}", _le_bytes(storage.flat))
      archive.writestr(f"{prefix}/version", "3\n")
    return
  with open(path, "wb") as f:
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                   {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
      pickle.dump(header, f, protocol=2)
    f.write(buf.getvalue())
    ordered = sorted(storages, key=lambda s: s.key)
    pickle.dump([s.key for s in ordered], f, protocol=2)
    for storage in ordered:
      f.write(struct.pack("<q", storage.flat.size))
      f.write(_le_bytes(storage.flat))


def _le_bytes(flat: np.ndarray) -> bytes:
  return np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("<")).tobytes()
