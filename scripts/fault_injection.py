"""Fault injection for train.py / eval.py (issue 18): the figures behind README's "Guarantees".

  python scripts/fault_injection.py [--series 3] [--kills 5] [--steps 300] [--root /tmp/gen_jax_faults]

Runs a tiny MLP VAE (256 MNIST examples) as subprocesses, exactly as a user would, and prints:
  kills survived / tried       SIGKILL at random times during training (some during a checkpoint save), rerun
                               until the run finishes; survived = every rerun resumed (or restarted) cleanly
  resumes bit-identical / tried  the killed-and-resumed run's final state (sha256 of every array, from its
                               checkpoint) equals an uninterrupted run's
  corruptions detected / tried   kinds of damage to the latest checkpoint: reported, moved aside, previous used
  disk full handled / tried    a tmpfs that fills up during a save (or an injected ENOSPC where mount fails)
  second writers refused / tried  a second train.py on a running workdir; a second eval lock
  early Ctrl-C exits 130 / tried  SIGINT 0.5-4 s after start (imports, data loading, compiling)
  bad inputs with a one-message error / tried   exit 2, no traceback
Not part of the test suite (minutes, not seconds). Data: GEN_JAX_DATA_DIR (or the usual search path).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = ["data.num_train=256", "data.num_test=64", "data.batch_size=32", "train.log_every=5", "train.eval_every=0",
        "train.sample_every=0", "train.keep_checkpoints=3"]


def train_cmd(workdir, steps: int, ckpt_every: int, *extra: str) -> list[str]:
  return [sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={workdir}", "--no_progress",
          *(f"--config.{o}" for o in TINY), f"--config.train.num_steps={steps}",
          f"--config.train.checkpoint_every={ckpt_every}", *extra]


def env() -> dict:
  e = dict(os.environ, JAX_PLATFORMS="cpu")
  e.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / "xla_cache"))
  return e


def run(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env(), **kw)


def final_digest(workdir: pathlib.Path, step: int) -> str | None:
  meta = workdir / "checkpoints" / str(step) / "meta" / "metadata"
  try:
    return json.loads(meta.read_text())["state_digest"]["sha256"]
  except (OSError, ValueError, KeyError, TypeError):
    return None


def one_line_error(proc: subprocess.CompletedProcess) -> bool:
  """Exit code 2, no traceback, one error message (its first line says what is wrong; a few messages go on to list
  the places searched)."""
  err = proc.stderr.strip()
  starts = [line for line in err.splitlines() if line.startswith(("error:", "train.py: error:", "eval.py: error:"))]
  return proc.returncode == 2 and "Traceback" not in err and len(starts) == 1


def log(msg: str) -> None:
  print(msg, flush=True)


# Kills ------------------------------------------------------------------------------------------------------------

def kill_series(workdir: pathlib.Path, steps: int, ckpt_every: int, kills: int, train_seconds: float,
                rng: random.Random) -> tuple[int, int, int, int]:
  """(kills tried, survived, during a save, final step)."""
  tried = survived = in_save = 0
  while True:
    proc = subprocess.Popen(train_cmd(workdir, steps, ckpt_every), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    if tried < kills:
      metrics = workdir / "metrics.jsonl"
      size0 = metrics.stat().st_size if metrics.exists() else 0
      deadline = time.time() + 300
      while proc.poll() is None and time.time() < deadline and not (metrics.exists()
                                                                     and metrics.stat().st_size > size0):
        time.sleep(0.02)
      done = max([int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()] or [0])
      time.sleep(rng.uniform(0.0, max(0.2, train_seconds * 0.9 * (steps - done) / steps)))
      if proc.poll() is None:
        saving = any(".orbax-checkpoint-tmp" in p.name for p in (workdir / "checkpoints").glob("*"))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        tried += 1
        in_save += saving
        continue
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
      log(f"  run after kill {tried} failed (exit {proc.returncode}): {err.strip().splitlines()[-1:]}")
      return tried, survived, in_save, -1
    survived = tried   # every kill before this clean finish was survived (each rerun started and resumed)
    return tried, survived, in_save, steps


# Corruption -------------------------------------------------------------------------------------------------------

def _largest(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _random_bytes(step_dir: pathlib.Path, prev: pathlib.Path) -> None:
  f = _largest(step_dir / "state")
  data = bytearray(f.read_bytes())
  mid = len(data) // 2
  data[mid:mid + 4096] = os.urandom(min(4096, len(data) - mid))
  f.write_bytes(bytes(data))


def _truncate(step_dir, prev):
  f = _largest(step_dir / "state")
  f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _swap_state(step_dir, prev):   # arrays that decode to finite numbers but are not the ones saved
  shutil.rmtree(step_dir / "state")
  shutil.copytree(prev / "state", step_dir / "state")


CORRUPTIONS = {
    "truncated data file": _truncate,
    "deleted data file": lambda d, p: _largest(d / "state").unlink(),
    "deleted _METADATA": lambda d, p: (d / "state" / "_METADATA").unlink(),
    "deleted top-level manifest": lambda d, p: (d / "state" / "manifest.ocdbt").unlink(),
    "garbage meta item": lambda d, p: (d / "meta" / "metadata").write_text("{garbage"),
    "deleted state dir": lambda d, p: shutil.rmtree(d / "state"),
    "empty step dir": lambda d, p: [shutil.rmtree(c) if c.is_dir() else c.unlink() for c in list(d.iterdir())],
    "4096 random bytes mid data file": _random_bytes,
    "another step's arrays (finite)": _swap_state,
}


def corruptions(base: pathlib.Path) -> tuple[int, int]:
  from gen_jax import config as config_lib
  from gen_jax.train import loop
  from gen_jax.train.checkpoint import Checkpoints
  config = config_lib.load_saved_config(base / "config.json")
  abstract = loop.setup(config).abstract_state()
  detected = 0
  for name, damage in CORRUPTIONS.items():
    work = ROOT / "corrupt" / name.replace(" ", "_").replace("'", "")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    steps = Checkpoints(work).steps()
    latest = work / "checkpoints" / str(steps[-1])
    damage(latest, work / "checkpoints" / str(steps[-2]))
    try:
      restored = Checkpoints(work).restore_latest_good(abstract)
      ok = restored is not None and restored[2] == steps[-2] and (work / "checkpoints_corrupt").is_dir()
    except Exception as e:  # noqa: BLE001
      ok = False
      log(f"  {name}: {type(e).__name__}: {e}")
    detected += ok
    log(f"  {name}: {'detected, previous checkpoint used' if ok else 'NOT DETECTED'}")
  return detected, len(CORRUPTIONS)


# Disk full, two writers, early Ctrl-C, bad inputs -----------------------------------------------------------------

def disk_full() -> bool:
  mount = ROOT / "tmpfs"
  shutil.rmtree(mount, ignore_errors=True)
  mount.mkdir(parents=True)
  inner = (f"mount -t tmpfs -o size=9m tmpfs {mount} && cd {REPO} && "
           + " ".join(f"'{c}'" for c in train_cmd(mount / "run", 60, 10))
           + f"; echo EXIT=$?; ls {mount}/run/checkpoints; umount {mount}")
  proc = run(["unshare", "--mount", "sh", "-c", inner])
  if "EXIT=" not in proc.stdout:
    log(f"  tmpfs not available ({proc.stderr.strip()[:100]}); the suite's injected-ENOSPC test covers this case")
    return False
  code = int(proc.stdout.split("EXIT=")[1].split()[0])
  listing = proc.stdout.split("EXIT=")[1].split()[1:]
  err = proc.stderr.strip().splitlines()
  ok = (code == 2 and len(err) == 1 and "no space left on device" in err[0] and "is intact" in err[0]
        and not any("tmp" in name for name in listing) and listing)
  log(f"  exit {code}; stderr: {err[-1][:160] if err else ''}...; checkpoints left: {listing}")
  return bool(ok)


def two_writers() -> tuple[int, int]:
  workdir = ROOT / "two_writers"
  shutil.rmtree(workdir, ignore_errors=True)
  first = subprocess.Popen(train_cmd(workdir, 100000, 1000), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env())
  ok = 0
  try:
    deadline = time.time() + 300
    while time.time() < deadline and not (workdir / "metrics.jsonl").exists():
      time.sleep(0.1)
    t0 = time.time()
    second = run(train_cmd(workdir, 100000, 1000))
    refused = one_line_error(second) and f"pid {first.pid}" in second.stderr
    log(f"  second train.py: exit {second.returncode} after {time.time() - t0:.1f} s: {second.stderr.strip()[:140]}...")
    ok += refused
    from gen_jax.storage.lock import FolderLock, FolderLockedError
    holder = subprocess.Popen([sys.executable, "-c", "import sys,time\nfrom gen_jax.storage.lock import FolderLock\n"
                               "FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
                               str(workdir / "eval")], cwd=REPO, stdout=subprocess.PIPE, text=True, env=env())
    holder.stdout.readline()
    try:
      FolderLock(workdir / "eval", "eval.py").acquire()
      log("  second eval lock: NOT refused")
    except FolderLockedError as e:
      ok += 1
      log(f"  second eval lock: refused ({str(e)[:100]}...)")
    holder.kill()
    holder.wait()
  finally:
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=300)
  return ok, 2


def early_ctrl_c(delays=(0.5, 1.0, 2.0, 4.0)) -> tuple[int, int]:
  ok = 0
  for delay in delays:
    workdir = ROOT / f"ctrl_c_{delay}"
    shutil.rmtree(workdir, ignore_errors=True)
    proc = subprocess.Popen(train_cmd(workdir, 2000, 1000), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    good = proc.returncode == 130 and "Traceback" not in err and "Exception ignored" not in err
    ok += good
    log(f"  SIGINT at {delay} s: exit {proc.returncode}{'' if good else ' ' + repr(err[-300:])}")
  return ok, len(delays)


def bad_inputs(run_dir: pathlib.Path) -> tuple[int, int]:
  a_file = ROOT / "a_file"
  a_file.write_text("x")
  empty = ROOT / "empty_data_dir"
  empty.mkdir(exist_ok=True)
  no_ckpt = ROOT / "no_checkpoints"
  no_ckpt.mkdir(exist_ok=True)
  shutil.copy(run_dir / "config.json", no_ckpt / "config.json")
  quarantined = ROOT / "quarantined"
  shutil.rmtree(quarantined, ignore_errors=True)
  (quarantined / "checkpoints_corrupt" / "20").mkdir(parents=True)
  new = str(ROOT / "bad_new")
  cases = {
      "--workdir naming a file": train_cmd(a_file, 10, 10),
      "unknown config file": [sys.executable, "train.py", "--config=configs/nope.py", f"--workdir={new}"],
      "ill-typed value": train_cmd(new, 10, 10, "--config.train.num_steps=abc"),
      "unknown key": train_cmd(new, 10, 10, "--config.model.no_such_key=1"),
      "misspelt dataset": train_cmd(new, 10, 10, "--config.data.name=mnistt"),
      "nonexistent data_dir": train_cmd(new, 10, 10, "--config.data.data_dir=/nonexistent"),
      "empty data_dir": train_cmd(new, 10, 10, f"--config.data.data_dir={empty}"),
      "resume with another model": train_cmd(run_dir, 10, 10, "--config.model.latent_dim=7"),
      "workdir with quarantined checkpoints": train_cmd(quarantined, 10, 10),
      "eval.py: no such workdir": [sys.executable, "eval.py", f"--workdir={ROOT / 'nope'}"],
      "eval.py: model override": [sys.executable, "eval.py", f"--workdir={run_dir}", "--config.model.latent_dim=10"],
      "eval.py: no checkpoints": [sys.executable, "eval.py", f"--workdir={no_ckpt}"],
      "eval.py: --config file": [sys.executable, "eval.py", f"--workdir={run_dir}", "--config=configs/vae.py"],
      "eval.py: missing step": [sys.executable, "eval.py", f"--workdir={run_dir}", "--step=999"],
      "train.py without --config": [sys.executable, "train.py", f"--workdir={new}"],
  }
  ok = 0
  for name, cmd in cases.items():
    proc = run(cmd)
    good = one_line_error(proc)
    ok += good
    last = proc.stderr.strip().splitlines()[-1:] or [""]
    log(f"  {name}: exit {proc.returncode}, {'one message' if good else 'NOT one message'}: {last[0][:110]}")
  return ok, len(cases)


def main() -> int:
  global ROOT
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--series", type=int, default=3, help="kill series (each: kills, then run to the end)")
  parser.add_argument("--kills", type=int, default=5, help="SIGKILLs per series")
  parser.add_argument("--steps", type=int, default=300, help="training steps of each run")
  parser.add_argument("--checkpoint_every", type=int, default=10)
  parser.add_argument("--root", default="/tmp/gen_jax_faults", help="scratch folder (emptied first)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--skip", default="", help="comma-separated parts to skip: kills,corrupt,disk,writers,ctrlc,bad")
  args = parser.parse_args()
  ROOT = pathlib.Path(args.root)
  shutil.rmtree(ROOT, ignore_errors=True)
  ROOT.mkdir(parents=True)
  skip = set(filter(None, args.skip.split(",")))
  rng = random.Random(args.seed)
  t_start = time.time()
  figures = []

  log(f"reference: an uninterrupted {args.steps}-step run")
  ref = ROOT / "reference"
  t0 = time.time()
  proc = run(train_cmd(ref, args.steps, args.checkpoint_every))
  if proc.returncode != 0:
    log(proc.stderr[-2000:])
    return 1
  rows = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines() if line.strip()]
  train_seconds = max(0.5, rows[-1]["wall_seconds"] - rows[0]["wall_seconds"])
  ref_digest = final_digest(ref, args.steps)
  log(f"  {time.time() - t0:.0f} s in all, {train_seconds:.1f} s training; final state sha256 {ref_digest[:16]}...")

  if "kills" not in skip:
    tried = survived = in_save = identical = 0
    for s in range(args.series):
      workdir = ROOT / f"killed_{s}"
      t, sv, sa, final = kill_series(workdir, args.steps, args.checkpoint_every, args.kills, train_seconds, rng)
      same = final == args.steps and final_digest(workdir, args.steps) == ref_digest
      tried, survived, in_save, identical = tried + t, survived + sv, in_save + sa, identical + same
      log(f"series {s}: {t} kills ({sa} during a save), final state {'bit-identical' if same else 'DIFFERENT'}")
    figures += [f"kills survived / tried: {survived} / {tried} ({in_save} during a checkpoint save)",
                f"resumes bit-identical / tried: {identical} / {args.series}"]
  if "corrupt" not in skip:
    log("corruption of the latest checkpoint:")
    d, n = corruptions(ref)
    figures.append(f"corruptions detected / tried: {d} / {n}")
  if "disk" not in skip:
    log("disk full (a 9 MiB tmpfs) while saving:")
    figures.append(f"disk full handled / tried: {int(disk_full())} / 1")
  if "writers" not in skip:
    log("two writers:")
    ok, n = two_writers()
    figures.append(f"second writers refused / tried: {ok} / {n}")
  if "ctrlc" not in skip:
    log("early Ctrl-C:")
    ok, n = early_ctrl_c()
    figures.append(f"early Ctrl-C exits 130 / tried: {ok} / {n}")
  if "bad" not in skip:
    log("bad inputs:")
    ok, n = bad_inputs(ref)
    figures.append(f"bad inputs with a one-message error / tried: {ok} / {n}")
  log(f"\n== figures ({time.time() - t_start:.0f} s) ==")
  for line in figures:
    log(line)
  return 0


ROOT = pathlib.Path("/tmp/gen_jax_faults")

if __name__ == "__main__":
  sys.exit(main())
