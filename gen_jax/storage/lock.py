"""An exclusive lock on a folder (a run's workdir, its eval/ folder): one writer at a time.

`fcntl.flock` on `<folder>/.lock`; the OS releases it when the process exits, however it dies (SIGKILL
included), so a stale lock never needs cleaning up. The lock file also records who holds it (pid, host, start
time, command) for the message the second process prints. The lock is per process and re-entrant: train.py takes
it before importing JAX, and the training loop taking it again in the same process is a no-op.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys
import time

from gen_jax.errors import ConfigError, GenJaxError

LOCK_NAME = ".lock"


class FolderLockedError(GenJaxError, RuntimeError):
  """Another process holds the folder's lock."""


_held: dict[pathlib.Path, list] = {}   # resolved lock path -> [open file, count] of the locks this process holds


def _describe(holder: dict) -> str:
  if not holder:
    return "another process (its details could not be read)"
  return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}, "
          f"command: {holder.get('command', '?')}")


def read_holder(folder: str | os.PathLike) -> dict:
  """What the lock file of `folder` says about its (last) holder; {} if unreadable."""
  try:
    data = json.loads((pathlib.Path(folder) / LOCK_NAME).read_text())
  except (OSError, ValueError):
    return {}
  return data if isinstance(data, dict) else {}


def check_writable_folder(folder: str | os.PathLike, flag: str = "--workdir") -> pathlib.Path:
  """`folder` as a folder this process can write (created if missing), or a one-line ConfigError: run before any
  data is loaded, so a wrong path fails at once."""
  path = pathlib.Path(folder).expanduser()
  if path.exists() and not path.is_dir():
    raise ConfigError(f"{flag}={folder} names an existing file, not a folder: pass a folder (a new one, or a run's).")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"{flag}={folder} cannot be created ({e.strerror or e}): pass a folder you can write.") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise ConfigError(f"{flag}={folder} is not writable by this user: pass a folder you can write.")
  return path


def _flock_briefly(f, tries: int = 10, wait: float = 0.05) -> None:
  """An exclusive lock on `f`, waiting up to tries x wait seconds: a probe (held_by_another, e.g. `gen_jax.study
  --status`) holds a free lock for an instant, which must not make a real writer fail. BlockingIOError if held."""
  for attempt in range(tries):
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return
    except BlockingIOError:
      if attempt == tries - 1:
        raise
      time.sleep(wait)


def held_by_another(folder: str | os.PathLike) -> bool:
  """Whether another process holds `folder`'s lock now (a lock file left by a finished process does not count):
  a probe, taken and released at once."""
  path = pathlib.Path(folder) / LOCK_NAME
  if not path.is_file() or path.resolve() in _held:
    return False
  try:
    with open(path) as f:   # flock needs no write access; a reader who cannot write still gets the answer
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        return True
      fcntl.flock(f, fcntl.LOCK_UN)
  except OSError:
    return False
  return False


class FolderLock:
  """`with FolderLock(workdir, "train.py"):` holds `<workdir>/.lock`, or raises FolderLockedError at once."""

  def __init__(self, folder: str | os.PathLike, purpose: str = "this run"):
    self.folder = pathlib.Path(folder)
    self.purpose = purpose
    self.path: pathlib.Path | None = None

  def acquire(self) -> "FolderLock":
    self.folder.mkdir(parents=True, exist_ok=True)
    path = (self.folder / LOCK_NAME).resolve()
    if path in _held:
      _held[path][1] += 1
      self.path = path
      return self
    f = open(path, "a+")
    try:
      _flock_briefly(f)
    except BlockingIOError:
      f.close()
      raise FolderLockedError(
          f"{self.folder} is in use by {_describe(read_holder(self.folder))}; {self.purpose} cannot run on it at "
          f"the same time. Wait for that process to finish (or stop it), or use another folder.") from None
    except OSError as e:   # a file system without flock support: run unlocked rather than not at all
      print(f"WARNING: cannot lock {path} ({e.strerror}); make sure no other process writes {self.folder}.",
            file=sys.stderr, flush=True)
      f.close()
      return self
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": " ".join([os.path.basename(sys.executable)] + sys.argv)[:500]}
    # Written in place (the lock is on this inode, so no rename): the holder is informational only.
    f.seek(0)
    f.truncate()
    f.write(json.dumps(holder) + "\n")
    f.flush()
    _held[path] = [f, 1]
    self.path = path
    return self

  def release(self) -> None:
    if self.path is None or self.path not in _held:
      return
    entry = _held[self.path]
    entry[1] -= 1
    if entry[1] <= 0:
      del _held[self.path]
      fcntl.flock(entry[0], fcntl.LOCK_UN)
      entry[0].close()
    self.path = None

  def __enter__(self) -> "FolderLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
