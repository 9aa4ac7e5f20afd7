"""A user's own images: a folder of PNG/JPEG files, or an .npz of arrays.

Folder layouts (class folders are optional; class names sorted -> label ids):
  root/*.png                          one split, no labels
  root/<class>/*.png                  one split, labelled
  root/train/..., root/test/...       explicit splits, each flat or with class folders
Without a test split, a seeded `test_fraction` of the examples is held out.

Pixels: uint8 HWC. Grey ('L', '1') stays C=1; alpha channels are dropped
(RGBA -> RGB, LA -> L); palette/CMYK/YCbCr images become RGB; 16-bit and float
images are refused. If any image is colour, grey ones are repeated to RGB
(noted in `source`).
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import pathlib
import shlex

import numpy as np
from PIL import Image, UnidentifiedImageError

from gen_jax.data.dataset import ArraySplit
from gen_jax.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GREY_MODES = ("L", "1", "LA")
_COLOUR_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "RGBX", "RGBa")
# Walks the folder itself (every subfolder, every suffix), so it works in any shell, with or without globstar.
_RESIZE_HINT = ('python -c "import pathlib, sys; from PIL import Image; '
                '[Image.open(f).resize(({w}, {h})).save(f) for f in pathlib.Path(sys.argv[1]).rglob(\'*\') '
                'if f.suffix.lower() in (\'.png\', \'.jpg\', \'.jpeg\')]" {root}')

Loaded = tuple[ArraySplit, ArraySplit, int | None, str]  # train, test, num_classes, source


def _is_image(p: pathlib.Path) -> bool:
  return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES


def _list_images(folder: pathlib.Path) -> list[pathlib.Path]:
  """Image files under `folder` (recursively), sorted by relative path."""
  return sorted((p for p in folder.rglob("*") if _is_image(p)), key=lambda p: p.relative_to(folder).as_posix())


def _scan_split(folder: pathlib.Path) -> tuple[list[pathlib.Path], dict[str, list[pathlib.Path]] | None]:
  """(files, None) for a flat folder, or (all files, {class: files}) for one with class subfolders."""
  subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
  top = sorted(p for p in folder.iterdir() if _is_image(p))
  if not subdirs:
    return top, None
  if top:
    raise DatasetError(
        f"{folder} holds both image files (e.g. {top[0].name}) and subfolders (e.g. {subdirs[0].name}/): "
        "ambiguous. Fix: put every image in a class subfolder, or remove the subfolders.")
  classes = {d.name: _list_images(d) for d in subdirs}
  return [p for files in classes.values() for p in files], classes


def _probe(path: pathlib.Path) -> tuple[tuple[int, int], str]:
  """(width, height) and PIL mode without decoding the pixels."""
  try:
    with Image.open(path) as im:
      return im.size, im.mode
  except (UnidentifiedImageError, OSError, ValueError) as e:
    raise DatasetError(f"Cannot read image {path}: {e}. Fix: re-save it as PNG/JPEG or delete it.") from e


def _decode(path: pathlib.Path, colour: bool) -> np.ndarray:
  """uint8 [H, W, 3 if colour else 1] pixels of one image."""
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in _GREY_MODES and not colour:
        return np.asarray(im.convert("L"), dtype=np.uint8)[:, :, None]
      return np.asarray(im.convert("RGB"), dtype=np.uint8)
  except (UnidentifiedImageError, OSError, ValueError) as e:
    raise DatasetError(f"Cannot decode image {path}: {e}. Fix: re-save it as PNG/JPEG or delete it.") from e


def _load_files(root: pathlib.Path, files: list[pathlib.Path], keep: np.ndarray | None = None
                ) -> tuple[np.ndarray, str]:
  """Decodes the files (those at indices `keep`, if given) into one uint8 [n, H, W, C] array on one thread per CPU
  (Pillow releases the GIL while decoding), after checking the sizes and modes of all of them (headers only)."""
  sizes: dict[tuple[int, int], pathlib.Path] = {}
  counts: collections.Counter = collections.Counter()
  modes = set()
  for f in files:
    size, mode = _probe(f)
    if mode not in _GREY_MODES + _COLOUR_MODES:
      raise DatasetError(
          f"Image {f} has PIL mode {mode!r} (16-bit or float pixels); only 8-bit grey/colour is supported. "
          "Fix: rescale it to 8 bits, e.g. `Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)).save(f)` "
          "for 16-bit grey.")
    sizes.setdefault(size, f)
    counts[size] += 1
    modes.add(mode)
  if len(sizes) > 1:
    (s1, f1), (s2, f2) = list(sizes.items())[:2]
    (w, h), _ = counts.most_common(1)[0]
    raise DatasetError(
        f"Images under {root} have different sizes: {f1} is {s1[0]}x{s1[1]} but {f2} is {s2[0]}x{s2[1]} (WxH); "
        f"{len(sizes)} sizes in all. Fix: resize them all to one size, e.g. to the most common {w}x{h}:\n  "
        + _RESIZE_HINT.format(w=w, h=h, root=shlex.quote(str(root))))
  colour = any(m not in _GREY_MODES for m in modes)
  note = ""
  if colour and modes & set(_GREY_MODES):
    note += " (mixed grey/colour: grey images converted to RGB)"
  if modes & {"RGBA", "LA", "PA", "RGBa"}:
    note += " (alpha channel dropped)"
  chosen = files if keep is None else [files[i] for i in keep]
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    decoded = list(pool.map(lambda f: _decode(f, colour), chosen, chunksize=64))
  if not decoded:
    return np.zeros((0,) + _probe_shape(files[0], colour), np.uint8), note
  return np.stack(decoded), note


def _probe_shape(path: pathlib.Path, colour: bool) -> tuple[int, int, int]:
  (w, h), _ = _probe(path)
  return h, w, 3 if colour else 1


def _holdout(n: int, test_fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
  """Sorted train and test indices; round(n * test_fraction) seeded test examples (at least 1 if fraction > 0)."""
  if not 0.0 <= test_fraction < 1.0:
    raise DatasetError(f"test_fraction must be in [0, 1) for {where}; found {test_fraction}. Fix: e.g. 0.1.")
  n_test = int(round(n * test_fraction))
  if test_fraction > 0 and n_test == 0 and n > 1:
    n_test = 1
  if n - n_test < 1:
    raise DatasetError(
        f"{where} has {n} examples: too few to hold out test_fraction={test_fraction} and keep a training set. "
        "Fix: add images, lower test_fraction, or provide an explicit test split.")
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _split_of(images: np.ndarray, labels: np.ndarray | None, index: np.ndarray | None = None) -> ArraySplit:
  if index is not None:
    images = images[index]
    labels = None if labels is None else labels[index]
  return ArraySplit(np.ascontiguousarray(images), None if labels is None else labels.astype(np.int32))


def load_image_folder(path: str | os.PathLike, test_fraction: float = 0.1, seed: int = 0,
                      num_train: int | None = None, num_test: int | None = None) -> Loaded:
  """Loads a folder of PNG/JPEG images (see the module docstring for layouts); `num_train` / `num_test`: keep the
  first N of a split (None = all), decoding only the files kept."""
  root = pathlib.Path(path).expanduser()
  if not root.is_dir():
    raise DatasetError(f"Image folder {root} does not exist. Fix: set --config.data.path to a folder of PNG/JPEG files.")
  has_splits = (root / "train").is_dir()
  split_dirs = {"train": root / "train"}
  if has_splits and (root / "test").is_dir():
    split_dirs["test"] = root / "test"
  elif not has_splits:
    split_dirs = {"train": root}
  scans = {s: _scan_split(d) for s, d in split_dirs.items()}
  for s, (files, _) in scans.items():
    if not files:
      raise DatasetError(
          f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {split_dirs[s]}. "
          "Fix: point --config.data.path at a folder holding PNG/JPEG files (optionally one subfolder per class).")
  labelled = {s: c is not None for s, (_, c) in scans.items()}
  if len(set(labelled.values())) > 1:
    raise DatasetError(
        f"{root}/train and {root}/test disagree: one has class subfolders, the other does not. "
        "Fix: use the same layout in both.")
  class_names = None
  if all(labelled.values()):
    class_names = sorted(set().union(*(c.keys() for _, c in scans.values())))
    for cls, files in scans["train"][1].items():
      if not files:
        raise DatasetError(
            f"Class folder {split_dirs['train'] / cls} holds no images. Fix: add images or delete the folder.")
  all_files = [f for files, _ in scans.values() for f in files]
  labels = None
  if class_names is not None:
    ids = {c: i for i, c in enumerate(class_names)}
    labels = np.array([ids[c] for _, classes in scans.values() for c, files in classes.items() for _ in files],
                      dtype=np.int32)
  n_train = len(scans["train"][0])
  classes_desc = f"{len(class_names)} classes {class_names}" if class_names else "no labels"
  if "test" in scans:
    tr, te = np.arange(n_train), np.arange(n_train, len(all_files))
    how = "train/ and test/ folders"
  else:
    tr, te = _holdout(n_train, test_fraction, seed, str(root))
    how = f"test = seeded (seed={seed}) {test_fraction:g} hold-out"
  tr, te = tr[:num_train], te[:num_test]     # None keeps all; only the kept files are decoded
  images, note = _load_files(root, all_files, np.concatenate([tr, te]))
  labels = None if labels is None else labels[np.concatenate([tr, te])]
  index_tr, index_te = np.arange(len(tr)), np.arange(len(tr), len(tr) + len(te))
  train, test = _split_of(images, labels, index_tr), _split_of(images, labels, index_te)
  source = f"image folder {root.resolve()}: {len(all_files)} files, {how}, {classes_desc}{note}"
  return train, test, None if class_names is None else len(class_names), source


def _as_images(x: np.ndarray, key: str, path: pathlib.Path) -> tuple[np.ndarray, str]:
  """uint8 [N, H, W, C] from an npz array ([N, H, W] grey, or [N, H, W, 1|3|4])."""
  note = ""
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
    raise DatasetError(
        f"{path}: array {key!r} has shape {x.shape}; expected [N, H, W] or [N, H, W, C] with C in (1, 3, 4). "
        "Fix: for channels-first data use `x.transpose(0, 2, 3, 1)`.")
  if x.shape[-1] == 4:
    x, note = x[..., :3], f" (alpha channel of {key} dropped)"
  if x.dtype != np.uint8:
    if x.dtype.kind not in "iub" or (x.size and (x.min() < 0 or x.max() > 255)):
      raise DatasetError(
          f"{path}: array {key!r} has dtype {x.dtype}" + (f" and values in [{x.min()}, {x.max()}]" if x.size else "")
          + "; expected uint8 pixels 0..255. Fix: e.g. `(x * 255).round().clip(0, 255).astype(np.uint8)` for floats in [0, 1].")
    x = x.astype(np.uint8)
  return x, note


def _as_labels(y: np.ndarray, key: str, n: int, path: pathlib.Path) -> np.ndarray:
  """int32 [N] from an npz label array ([N] or [N, 1])."""
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
    raise DatasetError(
        f"{path}: array {key!r} has dtype {y.dtype} shape {y.shape}; expected {n} non-negative integer labels "
        "(one per image). Fix: save integer class ids, e.g. `y.astype(np.int32)`.")
  return y.astype(np.int32)


def load_npz(path: str | os.PathLike, test_fraction: float = 0.1, seed: int = 0) -> Loaded:
  """Loads an .npz with `x_train`[, `y_train`, `x_test`, `y_test`] or `images`[, `labels`]."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise DatasetError(f"npz file {path} does not exist. Fix: set --config.data.path to an existing .npz file.")
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError) as e:
    raise DatasetError(f"Cannot read npz file {path}: {e}. Fix: save it with `np.savez(path, x_train=..., ...)`.") from e
  if "x_train" in arrays:
    keys = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
  elif "images" in arrays:
    keys = {"train": ("images", "labels")}
  else:
    raise DatasetError(
        f"{path} has arrays {sorted(arrays)}; expected `x_train` (+ optional `y_train`, `x_test`, `y_test`) "
        "or `images` (+ optional `labels`). Fix: re-save it with those names.")
  splits, notes = {}, ""
  for split, (xk, yk) in keys.items():
    if xk not in arrays:
      continue
    x, note = _as_images(arrays.pop(xk), xk, path)
    y = _as_labels(arrays.pop(yk), yk, x.shape[0], path) if yk in arrays else None
    splits[split], notes = (x, y), notes + note
  if not splits["train"][0].shape[0]:
    raise DatasetError(f"{path}: {keys['train'][0]} holds no images. Fix: save at least one image.")
  x, y = splits["train"]
  if "test" in splits:
    train, test = _split_of(*splits["train"]), _split_of(*splits["test"])
    how = "given train/test arrays"
  else:
    tr, te = _holdout(x.shape[0], test_fraction, seed, str(path))
    train, test = _split_of(x, y, tr), _split_of(x, y, te)
    how = f"test = seeded (seed={seed}) {test_fraction:g} hold-out"
  if (train.labels is None) != (test.labels is None):
    raise DatasetError(f"{path}: labels are given for one split only. Fix: save y_train and y_test, or neither.")
  num_classes = None
  if train.labels is not None:
    num_classes = int(max(train.labels.max(initial=-1), test.labels.max(initial=-1))) + 1
  source = f"npz {path.resolve()}: {how}{notes}"
  return train, test, num_classes, source
