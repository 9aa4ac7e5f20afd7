"""Studies: every (entry, dataset, seed) of a study file trained at one budget, evaluated by one suite, recorded.

A study file (studies/*.py) is Python whose `get_config(variant)` returns an ml_collections ConfigDict:

  name             the study's name (paths, report title)
  description      one line for the report
  datasets         data.name values, e.g. ('mnist',): each entry is trained on each
  seeds            config.seed values, e.g. (0, 1, 2); data.seed (hold-out split, fixed binarization) stays fixed
  entries          a tuple of ConfigDicts {name, config: 'configs/x.py:variant', overrides: ('key=value', ...)}
  budget           {rule: 'images' | 'wall_clock', images: N, seconds: S}
                   images: every run sees N training images (num_steps = ceil(N / (batch_size * batches per step)),
                   a GAN step with n_critic critic steps draws n_critic real batches); wall_clock: S seconds of
                   training on the hardware used (num_steps = S * steps/s measured by a short probe run, kept in
                   the workdir so a resumed run keeps its step count)
  eval_overrides   eval.* overrides every run gets: one suite and protocol for the whole study
  train_overrides  train.* overrides every run gets (curve period, checkpoints)

A run's config is the entry's config file, then data.name=<dataset>, seed=<seed>, the study's train_overrides, the
entry's overrides, the study's eval_overrides, the caller's extra overrides (data_dir, ...), and train.num_steps
from the budget. Each run trains in `<workdirs>/<study>/<entry>/<dataset>/seed<k>` (resumable: train/loop.py), is
evaluated with gen_jax.eval.evaluate, and leaves a ledger record in `<out>/ledger/<entry>__<dataset>__seed<k>/`
(record.json and small sample grids): the record is what aggregation reads (gen_jax/report/study.py), so a study
can be finished over several machines and sessions and re-aggregated without checkpoints. A run whose record
exists with the same config is finished and skipped; one whose record holds another config is refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time
from typing import Callable, Sequence

import ml_collections
import numpy as np

from gen_jax import config as config_lib
from gen_jax.errors import CheckpointError, ConfigError

from gen_jax.storage.atomic import write_bytes_atomic, write_text_atomic
from gen_jax.storage.lock import FolderLock, FolderLockedError, held_by_another, read_holder

LEDGER = "ledger"
RECORD = "record.json"
RECORD_FORMAT = 1
BUDGET_FILE = "study_budget.json"   # in a wall_clock run's workdir: the probed step count
RULES = ("images", "wall_clock")
# Machine-local keys: two machines that ran the same config differ only in these.
LOCAL_KEYS = ("data.data_dir", "data.tfds_dir", "eval.num_devices", "eval.feature_net", "eval.inception_weights")
LEDGER_IMAGES = ("samples", "reconstructions")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _register_studies_package() -> None:
  """Study files share code through `from studies import _common`: makes the repository's studies/ folder
  importable as the package `studies`, by its path (sys.modules), without putting the repository root on sys.path
  (where its train.py / eval.py would shadow other modules). A `studies` already imported is left as it is."""
  if "studies" in sys.modules:
    return
  folder = REPO_ROOT / "studies"
  spec = importlib.util.spec_from_file_location("studies", folder / "__init__.py",
                                                submodule_search_locations=[str(folder)])
  package = importlib.util.module_from_spec(spec)
  sys.modules["studies"] = package
  try:
    spec.loader.exec_module(package)
  except BaseException:
    del sys.modules["studies"]
    raise


def load_study(spec: str) -> ml_collections.ConfigDict:
  """Imports `studies/x.py[:variant]` (config.load_get_config_file), returns its validated `get_config(variant)`
  with `variant` and `file` added."""
  def found() -> str:
    files = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "studies").glob("[!_]*.py"))
    return f"; pass one of: {', '.join(files) or 'studies/<name>.py'}"
  _register_studies_package()
  study, path, variant = config_lib.load_get_config_file(spec, kind="study", call="get_config(variant)",
                                                         missing_hint=found)
  study.file = str(path)
  study.variant = variant
  validate_study(study)
  return study


def _safe_name(text: str) -> bool:
  return bool(text) and all(ch.isalnum() or ch in "_-." for ch in text) and "__" not in text


def validate_study(study: ml_collections.ConfigDict) -> None:
  """A ConfigError naming the field and the fix for any study that could not run as written."""
  where = study.get("file", "the study")
  for key in ("name", "datasets", "seeds", "entries", "budget"):
    if key not in study:
      raise ConfigError(f"{where}: the study has no {key!r}; see gen_jax/jobs/study.py for the fields")
  if not _safe_name(str(study.name)):
    raise ConfigError(f"{where}: name {study.name!r} must be letters, digits, '_', '-', '.' (no '__')")
  if not study.datasets or not all(_safe_name(str(d)) for d in study.datasets):
    raise ConfigError(f"{where}: datasets {tuple(study.datasets)!r} must be a non-empty tuple of dataset names")
  seeds = tuple(study.seeds)
  if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
    raise ConfigError(f"{where}: seeds {seeds!r} must be distinct non-negative integers, e.g. (0, 1, 2)")
  names = [str(e.get("name", "")) for e in study.entries]
  bad = [n for n in names if not _safe_name(n)]
  if not names or bad:
    raise ConfigError(f"{where}: every entry needs a name of letters, digits, '_', '-', '.' (no '__'); got {bad}")
  if len(set(names)) != len(names):
    raise ConfigError(f"{where}: entry names must be distinct; got {names}")
  for e in study.entries:
    cfg_path = str(e.get("config", "")).partition(":")[0]
    if not (REPO_ROOT / cfg_path).is_file() and not pathlib.Path(cfg_path).is_file():
      raise ConfigError(f"{where}: entry {e.name!r} names config {e.get('config')!r}, which does not exist")
  rule = str(study.budget.get("rule", ""))
  if rule not in RULES:
    raise ConfigError(f"{where}: budget.rule {rule!r} is not one of {RULES}")
  if rule == "images" and int(study.budget.get("images", 0)) <= 0:
    raise ConfigError(f"{where}: budget.rule='images' needs budget.images > 0 (training images per run)")
  if rule == "wall_clock" and float(study.budget.get("seconds", 0)) <= 0:
    raise ConfigError(f"{where}: budget.rule='wall_clock' needs budget.seconds > 0 (training seconds per run)")


def study_info(study: ml_collections.ConfigDict) -> dict:
  """What the report says about the study itself (from the study file, not from any run)."""
  return {"name": str(study.name), "description": str(study.get("description", "")), "file": str(study.get("file")),
          "variant": str(study.get("variant", "")), "datasets": list(study.datasets),
          "seeds": [int(s) for s in study.seeds],
          "entries": [{"name": str(e.name), "config": str(e.config), "overrides": list(e.get("overrides", ()))}
                      for e in study.entries],
          "budget": {"rule": str(study.budget.rule), "images": int(study.budget.get("images", 0)),
                     "seconds": float(study.budget.get("seconds", 0.0))},
          "eval_overrides": list(study.get("eval_overrides", ())),
          "train_overrides": list(study.get("train_overrides", ()))}


def run_key(entry: str, dataset: str, seed: int) -> str:
  return f"{entry}__{dataset}__seed{seed}"


@dataclasses.dataclass
class PlannedRun:
  entry: str
  dataset: str
  seed: int
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  spec: dict            # the entry as the study file names it

  @property
  def key(self) -> str:
    return run_key(self.entry, self.dataset, self.seed)


def batches_per_step(config) -> int:
  """Real batches one update step draws, as the config's family says (a GAN: n_critic, each critic step has its
  own batch); 1 where the family cannot tell before it is built."""
  from gen_jax.models import registry  # noqa: PLC0415 (imports jax: keep `import gen_jax.jobs.study` light)
  caps = registry.family_class(str(config.model.family)).capabilities_for(config)
  return int(caps.batches_per_step) if caps is not None else 1


def images_per_step(config) -> int:
  return int(config.data.batch_size) * batches_per_step(config)


def run_config(study, entry, dataset: str, seed: int, extra_overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config of one run, before the budget sets train.num_steps (see the module docstring for the order)."""
  spec = str(entry.config)
  path, _, variant = spec.partition(":")
  if not pathlib.Path(path).is_file() and (REPO_ROOT / path).is_file():
    path = str(REPO_ROOT / path)
  config = config_lib.load_config_file(f"{path}:{variant}" if variant else path)
  overrides = [f"data.name={dataset}", f"seed={int(seed)}", *study.get("train_overrides", ()),
               *entry.get("overrides", ()), *study.get("eval_overrides", ()), *extra_overrides]
  try:
    config_lib.apply_overrides(config, overrides)
  except ConfigError as e:
    raise ConfigError(f"study {study.name}, entry {entry.name}: {e}") from None
  return config


def plan(study, workdirs: str | pathlib.Path, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
         extra_overrides: Sequence[str] = ()) -> list[PlannedRun]:
  """Every (entry, dataset, seed) of the study, seed-major: all of seed 0 (datasets, then entries in file order),
  then seed 1, ..., so that a study stopped part-way (a session's end) leaves whole seeds that aggregate. `only` and
  `seeds` select some of them (unknown names are errors). Budgets of the 'images' rule are set here."""
  names = [str(e.name) for e in study.entries]
  if only:
    unknown = sorted(set(only) - set(names))
    if unknown:
      raise ConfigError(f"--only names {unknown}, not entries of study {study.name} ({', '.join(names)})")
  if seeds is not None:
    unknown = sorted(set(seeds) - set(study.seeds))
    if unknown:
      raise ConfigError(f"--seeds {unknown} are not seeds of study {study.name} {tuple(study.seeds)}")
  from gen_jax.eval import suite as eval_suite  # noqa: PLC0415 (imports jax)
  runs = []
  for seed in study.seeds:
    if seeds is not None and seed not in seeds:
      continue
    for dataset in study.datasets:
      for entry in study.entries:
        if only and entry.name not in only:
          continue
        config = run_config(study, entry, dataset, seed, extra_overrides)
        if study.budget.rule == "images":
          config.train.num_steps = max(1, math.ceil(int(study.budget.images) / images_per_step(config)))
        config_lib.validate_config(config)
        eval_suite.validate_eval_config(config)
        workdir = pathlib.Path(workdirs) / str(study.name) / str(entry.name) / dataset / f"seed{seed}"
        runs.append(PlannedRun(str(entry.name), dataset, int(seed), config, workdir,
                               {"config": str(entry.config), "overrides": list(entry.get("overrides", ()))}))
  return runs


def check_feature_nets(runs: Sequence[PlannedRun]) -> None:
  """A ConfigError before any training when a run's evaluation ('samples', 'latent') or training-time curve needs its
  dataset's feature classifier and none is there. The suite would skip those groups and the run would be recorded,
  and so count as finished, without its sample-quality numbers: better to stop and say how to train the classifier."""
  from gen_jax.eval.features import feature_net as feature_net_lib  # noqa: PLC0415 (imports jax)
  for run in runs:
    cfg = run.config
    uses = [g for g in ("samples", "latent") if g in tuple(cfg.eval.suites)]
    if int(cfg.train.get("eval_every", 0) or 0) > 0:
      uses.append("the training-time curve")
    if not uses:
      continue
    name = str(cfg.data.name)
    configured = str(cfg.eval.get("feature_net", "") or "")
    if configured:
      where = pathlib.Path(configured)
    elif name in feature_net_lib.OWN_DATA:
      where = None
    else:
      where = feature_net_lib.default_feature_net_dir(name)
    if where is not None and (where / feature_net_lib.META_FILE).is_file():
      continue
    cmd = feature_net_lib.train_command(name, directory=configured or None, data_path=str(cfg.data.get("path", "")),
                                        data_dir=str(cfg.data.get("data_dir", "") or ""))
    there = f"{where} has no {feature_net_lib.META_FILE}" if where is not None else "none is configured"
    raise ConfigError(f"run {run.key} needs a feature classifier for {name} ({', '.join(uses)}) and {there}; "
                      f"train it first with `{cmd}` ({feature_net_lib.train_cost(name)})"
                      + (", then pass --set eval.feature_net=<that folder>" if where is None else "")
                      + ", and run the study again (nothing was trained)")


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flat(v, key + "."))
    else:
      out[key] = v
  return out


def config_differences(recorded: dict, planned: dict) -> list[str]:
  """Keys whose values differ between a ledger record's config and the planned one. Machine-local keys
  (LOCAL_KEYS) and keys present on one side only (added to gen_jax since the record was written) are not compared;
  train.num_steps of a wall_clock run is compared by the caller."""
  a, b = _flat(recorded), _flat(planned)
  return sorted(k for k in set(a) & set(b) if k not in LOCAL_KEYS and a[k] != b[k])


def ledger_dir(out: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(out) / LEDGER


def read_record(path: pathlib.Path) -> dict:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise CheckpointError(f"ledger record {path} is unreadable ({e}); restore it from git (git checkout -- {path}) "
                          f"or delete its folder to run that run again") from None


def write_record(path: pathlib.Path, record: dict) -> None:
  """Writes a ledger record atomically, in the one format every record has (read back by read_record)."""
  write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True, default=str))


def finished(run: PlannedRun, out: str | pathlib.Path) -> bool:
  """True when the run's ledger record exists and holds the planned config; a record with another config is an
  error (the study file changed since: use another --out or delete the record)."""
  path = ledger_dir(out) / run.key / RECORD
  if not path.exists():
    return False
  record = read_record(path)
  planned = config_lib.to_dict(run.config)
  recorded = dict(record.get("config", {}))
  if record.get("budget", {}).get("rule") == "wall_clock":   # its step count came from the probe
    planned.setdefault("train", {})["num_steps"] = recorded.get("train", {}).get("num_steps")
  diff = config_differences(recorded, planned)
  if diff:
    shown = ", ".join(f"{k}: {_flat(recorded).get(k)!r} recorded, {_flat(planned).get(k)!r} now" for k in diff[:4])
    raise ConfigError(f"ledger record {path} was made with another config ({shown}{', ...' if len(diff) > 4 else ''}); "
                      f"the study file or its configs changed. Write the new study to another --out, or delete "
                      f"{path.parent} (and its workdir {run.workdir}) to run it again")
  return True


def hardware() -> dict:
  """The machine a run trained and was evaluated on."""
  import jax
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  devices = jax.devices()
  return {"cpu": cpu, "cpu_cores": cores, "jax_version": jax.__version__, "platform": devices[0].platform,
          "device_kind": devices[0].device_kind, "num_devices": len(devices), "python": platform.python_version()}


def git_state(root: pathlib.Path = REPO_ROOT) -> dict:
  """The commit of the code and whether tracked files differed from it (code_dirty); None where git is absent."""
  def git(*args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
  try:
    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "code_dirty": None}
  if head.returncode != 0:
    return {"commit": None, "code_dirty": None}
  return {"commit": head.stdout.strip(), "code_dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def commit_note(out: str | pathlib.Path, current: str | None) -> str | None:
  """A note when the code at hand is not the code that made the records of the study's highest seed so far: runs
  recorded now would be measured by another version (legitimate, but it should be a choice). None when they agree,
  or when there are no records or no git."""
  records = [read_record(p) for p in sorted(ledger_dir(out).glob(f"*/{RECORD}"))]
  if not records or not current:
    return None
  top = max(int(r["seed"]) for r in records)
  made_by = sorted({str(r.get("code", {}).get("commit")) for r in records
                    if int(r["seed"]) == top and r.get("code", {}).get("commit")})
  if not made_by or current in made_by:
    return None
  return (f"Note: the records of seed {top} in {ledger_dir(out)} were made by commit "
          f"{', '.join(c[:10] for c in made_by)}; this is {current[:10]}. Runs recorded now are measured by this code "
          f"(the report's Runs table names each run's commit). To go on with the records' code, run from a checkout "
          f"of that commit (scripts/long_runs.sh does so).")


def _read_jsonl(path: pathlib.Path) -> list[dict]:
  rows = []
  if not path.exists():
    return rows
  for line in path.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except ValueError:   # a line cut by a crash
      continue
  return rows


def _numbers(row: dict) -> dict:
  return {k: v for k, v in row.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _small_png(src: pathlib.Path, dst: pathlib.Path, max_side: int = 320) -> str | None:
  """Copies a grid PNG, shrunk by an integer factor (nearest neighbour: the grids were enlarged that way) until
  its longer side is at most `max_side`."""
  if not src.is_file():
    return None
  from PIL import Image
  with Image.open(src) as img:
    factor = max(1, math.ceil(max(img.size) / max_side))
    small = img.resize((max(1, img.size[0] // factor), max(1, img.size[1] // factor)), Image.NEAREST)
    buf = io.BytesIO()
    small.save(buf, format="PNG")
  write_bytes_atomic(dst, buf.getvalue())
  return dst.name


def _probe_steps(run: PlannedRun, seconds: float, train_fn, probe_steps: int = 50) -> dict:
  """wall_clock rule: times `probe_steps` steps in a throwaway workdir (steps/s from the log rows after the first,
  which holds the compile) and returns {num_steps, probe_steps_per_sec}, stored in the workdir for resumption."""
  path = run.workdir / BUDGET_FILE
  if path.exists():
    return json.loads(path.read_text())
  probe_dir = run.workdir.parent / f".probe_{run.workdir.name}"
  shutil.rmtree(probe_dir, ignore_errors=True)
  cfg = config_lib.from_dict(config_lib.to_dict(run.config))
  log_every = max(1, probe_steps // 5)
  config_lib.apply_overrides(cfg, [f"train.num_steps={probe_steps}", f"train.log_every={log_every}",
                                   "train.eval_every=0", f"train.checkpoint_every={probe_steps}"])
  summary = train_fn(cfg, probe_dir)
  if summary and summary.get("stopped_by"):   # the handler took the signal: stop here, write no budget
    shutil.rmtree(probe_dir, ignore_errors=True)
    raise KeyboardInterrupt(f"{summary['stopped_by']} during the timing probe of {run.key}")
  rates = [r["steps_per_sec"] for r in _read_jsonl(probe_dir / "metrics.jsonl")
           if r.get("split", "train") == "train" and "steps_per_sec" in r][1:]
  shutil.rmtree(probe_dir, ignore_errors=True)
  if not rates:
    raise ConfigError(f"the timing probe of {run.key} logged no step rate after its first row ({probe_steps} steps, "
                      f"a row every {log_every}); the wall_clock budget cannot be set. Rerun the study.")
  rate = float(np.median(rates))
  info = {"num_steps": max(1, int(seconds * rate)), "probe_steps": probe_steps, "probe_steps_per_sec": rate}
  run.workdir.mkdir(parents=True, exist_ok=True)
  write_text_atomic(path, json.dumps(info, indent=2))
  return info


def _train(config, workdir: pathlib.Path) -> dict:
  """Trains (or resumes) one run without a progress bar, with the during-training evaluator (the FD curve)."""
  from gen_jax.eval.training_eval import make_training_evaluator
  from gen_jax.train.loop import train
  return train(config, workdir, progress=False, evaluator=make_training_evaluator)


STUDY_EVAL = "study_eval.json"   # in <workdir>/eval: the eval config and code of the study's evaluation


def _eval_section(config) -> dict:
  """The evaluation settings that decide a run's numbers (machine-local keys left out)."""
  local = {k.split(".", 1)[1] for k in LOCAL_KEYS if k.startswith("eval.")}
  return {k: v for k, v in config_lib.to_dict(config).get("eval", {}).items() if k not in local}


def _evaluated(workdir: pathlib.Path, step: int, config) -> tuple[dict, dict] | None:
  """(eval/metrics.json, the code that wrote it) when the study already evaluated this run at `step` with the same
  evaluation settings and every group of its suites; None otherwise (an evaluation made by hand, at another step,
  with other settings, or before this check existed is redone, not recorded under today's config)."""
  path, mark_path = workdir / "eval" / "metrics.json", workdir / "eval" / STUDY_EVAL
  if not (path.exists() and mark_path.exists()):
    return None
  try:
    report, mark = json.loads(path.read_text()), json.loads(mark_path.read_text())
  except ValueError:
    return None
  suites = tuple(config.eval.suites)
  if report.get("step") != step or not set(suites) <= set(report.get("groups", {})):
    return None
  if mark.get("step") != step or mark.get("eval") != json.loads(json.dumps(_eval_section(config), default=str)):
    return None
  return report, mark.get("code", {})


def _with_study_eval_settings(workdir: pathlib.Path, config) -> None:
  """Writes the study's evaluation settings into the run's saved config.json (what eval.py reads), so a run
  trained before the study's eval settings changed is evaluated with today's."""
  path = workdir / "config.json"
  saved = config_lib.read_saved_config_json(path)
  if saved.get("eval") != config_lib.to_dict(config).get("eval"):
    saved["eval"] = config_lib.to_dict(config)["eval"]
    write_text_atomic(path, json.dumps(saved, indent=2, default=str))


def _evaluate(workdir: pathlib.Path) -> dict:
  from gen_jax.eval.evaluate import evaluate_workdir
  return evaluate_workdir(workdir, progress=False)


def run_one(run: PlannedRun, study, out: pathlib.Path, phase: Callable[[str], None] = lambda s: None,
            train_fn=_train, evaluate_fn=_evaluate, skip_recorded: bool = False) -> dict | None:
  """Trains, evaluates and records one run; returns its ledger record. Output of training and evaluation goes to
  `<workdir>/study.log` (the study shows one progress line). The workdir stays locked from training to the record
  (the main process holds it), so a second study process refuses the run instead of evaluating it twice, and
  `--status` can say which run is in progress (FolderLockedError when another process holds it). `skip_recorded`:
  return None, doing nothing, when the run's record exists once the lock is held (another study process planned
  the same run and recorded it first). The main process decides both for every process of a multi-host job."""
  from gen_jax import parallel   # noqa: PLC0415 (imports jax)
  run.workdir.mkdir(parents=True, exist_ok=True)
  lock, busy = None, None
  if parallel.is_main_process():
    try:
      lock = FolderLock(run.workdir, "a study run").acquire()
    except FolderLockedError as e:
      busy = e
  if parallel.main_process_decides(busy is not None):
    raise busy or FolderLockedError(f"{run.workdir} is in use by another study process (the main process says)")
  try:
    if skip_recorded and parallel.main_process_decides(parallel.is_main_process() and finished(run, out)):
      return None
    return _run_one_locked(run, study, out, phase, train_fn, evaluate_fn)
  finally:
    if lock is not None:
      lock.release()


def _run_one_locked(run: PlannedRun, study, out: pathlib.Path, phase, train_fn, evaluate_fn) -> dict:
  budget = {"rule": str(study.budget.rule), "batch_size": int(run.config.data.batch_size),
            "batches_per_step": batches_per_step(run.config), "images_per_step": images_per_step(run.config)}
  with open(run.workdir / "study.log", "a") as log, contextlib.redirect_stdout(log):
    if study.budget.rule == "wall_clock":
      phase("probe")
      budget["seconds"] = float(study.budget.seconds)
      budget.update(_probe_steps(run, float(study.budget.seconds), train_fn))
      run.config.train.num_steps = int(budget["num_steps"])
    else:
      budget["images"] = int(study.budget.images)
    phase("train")
    summary = train_fn(run.config, run.workdir)
    if summary.get("stopped_by"):
      raise KeyboardInterrupt(f"{summary['stopped_by']} during {run.key}")
    step = int(summary["step"])
    done = _evaluated(run.workdir, step, run.config)
    if done is None:
      phase("eval")
      _with_study_eval_settings(run.workdir, run.config)
      code = git_state()
      report = evaluate_fn(run.workdir)
      write_text_atomic(run.workdir / "eval" / STUDY_EVAL, json.dumps(
          {"step": step, "eval": _eval_section(run.config), "code": code}, indent=1, default=str))
    else:
      report, code = done
  rows = _read_jsonl(run.workdir / "metrics.jsonl")
  rows = [r for r in rows if int(r.get("step", 0)) <= step]   # a resumed run may have logged past its checkpoint
  key_dir = ledger_dir(out) / run.key
  images = {}
  for name in LEDGER_IMAGES:
    src = report.get("images", {}).get(name)
    if src:
      saved = _small_png(pathlib.Path(src), key_dir / f"{name}.png")
      if saved:
        images[name] = saved
  training_eval = run.workdir / "training_eval.json"
  train_info = report.get("train", {})
  record = {
      "format": RECORD_FORMAT,
      "study": str(study.name),
      "entry": run.entry, "dataset": run.dataset, "seed": run.seed, "key": run.key,
      "entry_spec": run.spec,
      "config": config_lib.to_dict(run.config),
      "budget": dict(budget, steps=step, images_seen=step * budget["images_per_step"]),
      "train": {"steps": step, "images_seen": step * budget["images_per_step"],
                "wall_seconds": train_info.get("wall_seconds"),
                # of which the training-time evaluation (FD curve) and image grids (None: not recorded then)
                "eval_seconds": train_info.get("eval_seconds")},
      "eval": {"wall_seconds": report.get("eval_wall_seconds")},
      "metrics": report,
      "curve": {"eval_rows": [_numbers(r) for r in rows if r.get("split") == "eval"],
                "train_rows": [_numbers(r) for r in rows if r.get("split", "train") == "train"],
                "protocol": json.loads(training_eval.read_text()) if training_eval.exists() else None},
      "hardware": hardware(),
      "code": code,   # the code that evaluated the run (training's commit is in the checkpoints' history)
      "images": images,
  }
  write_record(key_dir / RECORD, record)
  return record


def _duration(seconds: float) -> str:
  seconds = max(0, int(seconds))
  h, m = divmod(seconds // 60, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{seconds % 60:02d}s"


class ProgressLine:
  """One line for the whole study, rewritten in place: runs done / total, the run in progress, elapsed, ETA (mean
  time of the runs done in this session times the runs left)."""

  def __init__(self, name: str, total: int, done: int, enabled: bool = True, stream=None):
    self.name, self.total, self.done, self.enabled = name, total, done, enabled
    self.stream = stream or sys.stderr
    self.t0 = time.time()
    self.new_done = 0
    self.current = ""
    self.width = 0

  def show(self, current: str | None = None) -> None:
    if current is not None:
      self.current = current
    if not self.enabled:
      return
    elapsed = time.time() - self.t0
    left = self.total - self.done
    eta = _duration(elapsed / self.new_done * left) if self.new_done else "?"
    text = (f"study {self.name}: {self.done}/{self.total} runs done, {_duration(elapsed)} elapsed, ETA {eta}"
            + (f" | {self.current}" if self.current and left else ""))
    self.stream.write("\r" + text.ljust(self.width))
    self.stream.flush()
    self.width = len(text)

  def run_done(self) -> None:
    self.done += 1
    self.new_done += 1
    self.show("")

  def run_skipped(self) -> None:
    """A run found recorded by another process: done, but not counted in the ETA's time per run."""
    self.done += 1
    self.show("")

  def note(self, text: str) -> None:
    """A line of its own above the progress line (printed even when the progress line is off)."""
    if self.enabled:
      self.stream.write("\r" + " " * self.width + "\r")
      self.width = 0
    print(text, flush=True)

  def close(self) -> None:
    if self.enabled:
      self.stream.write("\n")
      self.stream.flush()


def _trained_step(workdir: pathlib.Path) -> int | None:
  """The newest finished checkpoint step in a run's workdir (orbax's step folders; None: no checkpoint)."""
  folder = workdir / "checkpoints"
  steps = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
  return max(steps) if steps else None


def status(study, out: str | pathlib.Path, workdirs: str | pathlib.Path = "runs/studies",
           only: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
           extra_overrides: Sequence[str] = ()) -> dict:
  """Where a study stands, from its ledger and workdirs alone (nothing is trained or loaded): each planned run's
  state (recorded, trained to step s of N, not started), the recorded cost of each finished run, and an estimate of
  the time left from the recorded costs of the same entry (training scaled by the steps left, plus a whole
  evaluation). Runs of an entry with no record yet are not estimated, and said so."""
  out = pathlib.Path(out)
  runs = plan(study, workdirs, only, seeds, extra_overrides)
  records = {r.key: read_record(ledger_dir(out) / r.key / RECORD) for r in runs if finished(r, out)}
  costs: dict[tuple[str, str], list[tuple[float, float]]] = {}   # every record of the ledger, not only these runs'
  for path in sorted(ledger_dir(out).glob(f"*/{RECORD}")):
    rec = read_record(path)
    train_s, eval_s = rec.get("train", {}).get("wall_seconds"), rec.get("eval", {}).get("wall_seconds")
    if train_s is not None and eval_s is not None:
      costs.setdefault((rec["entry"], rec["dataset"]), []).append((float(train_s), float(eval_s)))
  rows, left, unestimated = [], 0.0, []
  for run in runs:
    steps = int(run.config.train.num_steps)
    budget_file = run.workdir / BUDGET_FILE   # a wall_clock run's probed step count
    if budget_file.is_file():
      steps = int(json.loads(budget_file.read_text()).get("num_steps", steps))
    if run.key in records:
      rec = records[run.key]
      rows.append({"key": run.key, "state": "recorded", "train_seconds": rec.get("train", {}).get("wall_seconds"),
                   "eval_seconds": rec.get("eval", {}).get("wall_seconds")})
      continue
    step = _trained_step(run.workdir) or 0
    state = (f"trained, not evaluated ({step} steps)" if step >= steps else
             f"step {step} of {steps}" if step else "not started")
    if held_by_another(run.workdir):
      state += f" (running now: pid {read_holder(run.workdir).get('pid', '?')})"
    known = costs.get((run.entry, run.dataset))
    if known:
      train_s = sum(c[0] for c in known) / len(known) * max(0.0, 1.0 - step / steps)
      eval_s = sum(c[1] for c in known) / len(known)
      left += train_s + eval_s
    else:
      train_s = eval_s = None
      unestimated.append(run.key)
    rows.append({"key": run.key, "state": state, "left_seconds": None if known is None else train_s + eval_s})
  return {"study": str(study.name), "runs": rows, "recorded": len(records), "planned": len(runs),
          "left_seconds": left, "unestimated": unestimated}


def status_text(st: dict) -> str:
  """`status` as the lines `python -m gen_jax.study ... --status` prints."""
  width = max((len(r["key"]) for r in st["runs"]), default=10)
  state_width = max((len(r["state"]) for r in st["runs"]), default=10)
  lines = [f"study {st['study']}: {st['recorded']} of {st['planned']} planned runs recorded"]
  for r in st["runs"]:
    if r["state"] == "recorded":
      cost = (f"train {_duration(r['train_seconds'])} + eval {_duration(r['eval_seconds'])}"
              if r.get("train_seconds") is not None and r.get("eval_seconds") is not None else "cost not recorded")
    else:
      cost = (f"about {_duration(r['left_seconds'])} left" if r.get("left_seconds") is not None
              else "no recorded run of this entry to estimate from")
    lines.append(f"  {r['key']:<{width}}  {r['state']:<{state_width}}  {cost}")
  if st["recorded"] < st["planned"]:
    note = (f" ({len(st['unestimated'])} runs of entries without a record not counted)" if st["unestimated"] else "")
    lines.append(f"Left: about {_duration(st['left_seconds'])} at the recorded costs of this study's finished runs "
                 f"(their machine; the same entry's mean){note}.")
  return "\n".join(lines)


def run_study(study, out: str | pathlib.Path, workdirs: str | pathlib.Path = "runs/studies",
              only: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              extra_overrides: Sequence[str] = (), progress: bool = True, max_runs: int | None = None,
              train_fn=_train, evaluate_fn=_evaluate) -> dict:
  """Runs every planned run without a matching ledger record (at most `max_runs` of them: for tests and for
  splitting a study over sessions). Returns {"runs": planned keys, "skipped": finished before (or by another study
  process meanwhile), "ran": run now, "busy": left to another study process running them now}."""
  out = pathlib.Path(out)
  runs = plan(study, workdirs, only, seeds, extra_overrides)
  skipped = [r.key for r in runs if finished(r, out)]
  todo = [r for r in runs if r.key not in skipped]
  if max_runs is not None:
    todo = todo[:max_runs]
  check_feature_nets(todo)
  line = ProgressLine(str(study.name), len(runs), len(skipped), enabled=progress)
  ran, busy = [], []
  try:
    for run in todo:
      label = f"{run.entry}/{run.dataset}/seed{run.seed}"
      line.show(label)
      try:
        record = run_one(run, study, out, phase=lambda p, label=label: line.show(f"{label}: {p}"),
                         train_fn=train_fn, evaluate_fn=evaluate_fn, skip_recorded=True)
      except FolderLockedError as e:   # another study process is running it: leave it to that process
        busy.append(run.key)
        line.note(f"{run.key} left to another process: {e}")
        continue
      if record is None:               # recorded meanwhile by another study process
        skipped.append(run.key)
        line.run_skipped()
      else:
        ran.append(run.key)
        line.run_done()
  finally:
    line.close()
  return {"runs": [r.key for r in runs], "skipped": skipped, "ran": ran, "busy": busy}
