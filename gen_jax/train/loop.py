"""The training loop: set-up, resume, the hot loop, logging, checkpoints, signals.

Python only dispatches the jitted step in the hot loop; metrics are summed on
device and fetched every `config.train.log_every` steps (and before each
checkpoint), never per step: each train row of metrics.jsonl holds the means
over the steps since the previous row (`averaged_over` says how many).

With `config.train.steps_per_dispatch = S > 1` each dispatch runs S update
steps in one `lax.scan` call, as long as those S steps do not cross a step at
which something must happen (a log, checkpoint or sample step, the last step,
a simulated interrupt; see `next_event_step`); single-step calls (a second
function, compiled only when needed) reach such a step exactly. So logs and
checkpoints land on the same steps as with S = 1, and a signal stops the run
at the next call boundary, at most S steps later.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.data import load_dataset
from gen_jax.data.dataset import Dataset
from gen_jax.data.sampler import BatchSampler, DeviceData, make_sampler, to_device
from gen_jax.errors import ConfigError, NonFiniteLossError
from gen_jax.storage.images import make_grid, render_scatter, save_image
from gen_jax.models import optim
from gen_jax import cpu_kernels
from gen_jax.train import step as step_lib
from gen_jax.train import checkpoint as checkpoint_lib
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.storage.lock import FolderLock
from gen_jax.models.registry import build_family
from gen_jax.train import metrics_log as metrics_log_lib
from gen_jax.train.metrics_log import MetricsLog

# Config keys that may change when a run is resumed (everything else must match the saved config).
RESUMABLE_CHANGES = ("train.", "eval.", "data.data_dir", "data.tfds_dir")
_ABSENT = object()


@dataclasses.dataclass
class Run:
  """Everything that train and eval share, built from a config."""
  config: Any
  dataset: Dataset
  mesh: Mesh
  family: Any
  sampler: BatchSampler
  keys: dict
  data: DeviceData

  @functools.cached_property
  def visualize(self):
    """The family's image function, jitted once per run."""
    return jax.jit(self.family.visualize)

  def abstract_state(self):
    return step_lib.abstract_state(self.family, self.sampler, self.data, self.keys, self.mesh)

  def init_state(self):
    return step_lib.init_state(self.family, self.sampler, self.data, self.keys, self.mesh)

  def compiler_options(self):
    """The train step's XLA compiler options (config.train.cpu_conv_kernels; None off CPU)."""
    choice = self.config.train.cpu_conv_kernels
    return cpu_kernels.compiler_options(choice, self.mesh.devices.flat[0].platform)

  def compile_train_step(self, steps_per_call: int = 1, accumulate: bool = False):
    return step_lib.compile_train_step(self.family, self.sampler, self.mesh, steps_per_call=steps_per_call,
                                       compiler_options=self.compiler_options(), accumulate=accumulate)



def setup(config, mesh: Mesh | None = None, family=None) -> Run:
  config_lib.validate_config(config)
  mesh = mesh if mesh is not None else parallel.make_mesh()
  parallel.check_batch_size(int(config.data.batch_size), mesh)
  dataset = load_dataset(config.data)
  family = family if family is not None else build_family(config, dataset)
  per_step = int(config.data.batch_size) * int(family.capabilities.batches_per_step)
  sampler = make_sampler(dataset, per_step, mesh)
  keys = step_lib.run_keys(int(config.seed))
  data = to_device(dataset, mesh, "train")
  return Run(config=config, dataset=dataset, mesh=mesh, family=family, sampler=sampler, keys=keys, data=data)


def data_summary_line(dataset) -> str:
  """The one line train.py prints about the data it loaded (name, examples per split, classes, shape, source)."""
  describe = getattr(dataset, "summary_line", None)
  if describe is not None:
    return describe()
  return f"Data: {dataset.name} (generated on device: {type(dataset).__name__})"


class _StopFlag:
  """Turns SIGTERM/SIGINT into a request to checkpoint and stop at the next call boundary."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  def __enter__(self):
    try:
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    except ValueError:  # not the main thread: signals stay as they are
      self._previous = {}
    return self

  def _handle(self, signum, frame):
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def early_interrupt_pending() -> bool:
  """Whether the SIGINT handler train.py installs before importing JAX has seen a Ctrl-C. (It also raises
  KeyboardInterrupt, but one raised inside a garbage-collection callback is printed and swallowed.)"""
  return bool(getattr(signal.getsignal(signal.SIGINT), "pending", False))


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _check_resume_config(workdir: pathlib.Path, config) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  recorded = config_lib.read_saved_config_json(path)   # as saved, before today's defaults filled the gaps
  saved_family = config_lib.get_by_path(recorded, "model.family")
  family = config_lib.get_by_path(config, "model.family")
  if saved_family is not None and saved_family != family:   # another model family: its keys are not "newer than the run", the run is another
    raise ConfigError(f"{workdir} holds a {saved_family} run; this config trains a {family} "
                      f"(config.model.family={family!r}; {path} has {saved_family!r}): use another --workdir "
                      f"(or delete {workdir} to start over, losing that run)")
  saved = config_lib.to_dict(config_lib.load_saved_config(path))
  current = config_lib.to_dict(config)
  inert = _unread_optimizer_fields(saved, current)
  changed = [k for k in config_lib.diff_configs(saved, current)
             if not k.startswith(RESUMABLE_CHANGES) and k not in inert]
  if changed:
    added = {k: config_lib.get_by_path(saved, k) for k in changed
             if config_lib.get_by_path(recorded, k, _ABSENT) is _ABSENT}
    note = "".join(f" config.{k} is newer than the run: it was trained with today's default {v!r}, "
                   f"pass --config.{k}={v!r} to resume." for k, v in added.items())
    verb = "differs" if len(changed) == 1 else "differ"
    raise ConfigError(f"{workdir} holds a run with a different config ({', '.join('config.' + k for k in changed)} "
                      f"{verb} from {path}). Resume with the same config, or pass a new --workdir.{note}")


def _schedule_change_note(workdir: pathlib.Path, config):
  """When a resume raises (or lowers) train.num_steps and a learning-rate schedule is computed over num_steps, a
  function step -> the line that says how the rate changes at that step; else None."""
  path = workdir / "config.json"
  if not path.exists():
    return None
  saved_config = config_lib.load_saved_config(path)
  old_n, new_n = optim.schedule_horizon(saved_config), optim.schedule_horizon(config)
  if old_n == new_n:
    return None
  current = config_lib.to_dict(config)
  sections = [s for s, f in current.items() if isinstance(f, dict) and "schedule" in f
              and f["schedule"] in ("cosine", "warmup_cosine", "constant_cosine")
              or (isinstance(f, dict) and f.get("schedule") == "burda" and not int(f.get("stage_steps", 0)))]
  if not sections:
    return None

  def note(step: int) -> str:
    parts = []
    for s in sections:
      cfg = config[s]
      scale = _discriminator_steps_per_step(config) if s == "d_optimizer" else 1
      before = float(optim.make_schedule(cfg, old_n * scale)(step * scale))
      after = float(optim.make_schedule(cfg, new_n * scale)(step * scale))
      parts.append(f"config.{s}.schedule={cfg.schedule!r} spans the run's steps, so its rate at step {step} "
                   f"goes from {before:.3g} (the {old_n}-step schedule) to {after:.3g} (a {new_n}-step one)")
    return (f"note: the learning-rate schedules now span {new_n} steps instead of {old_n}: " + "; ".join(parts) +
            f". Steps 0-{step} followed the {old_n}-step schedule, the rest follow the {new_n}-step one (a straight "
            f"{new_n}-step run differs). To keep the schedule this run started with, add "
            f"--config.train.schedule_steps={old_n}.")
  return note


def _discriminator_steps_per_step(config) -> int:
  """Discriminator updates per train step (its schedule spans that many times the run's steps): the family's
  batches per step (a GAN's n_critic; 1 for the VAE-GAN, whose D steps once per step)."""
  from gen_jax.models.registry import family_class
  capabilities = family_class(config.model.family).capabilities_for(config)
  return int(capabilities.batches_per_step) if capabilities is not None else 1


def _unread_optimizer_fields(saved: dict, current: dict) -> set[str]:
  """'<section>.<field>' for schedule fields that an optimizer section's schedule (the same in both configs)
  does not read, e.g. optimizer.final_lr_fraction under a constant rate: changing them changes nothing."""
  inert = set()
  for section, fields in current.items():
    if (isinstance(fields, dict) and "schedule" in fields and isinstance(saved.get(section), dict)
        and saved[section].get("schedule") == fields["schedule"]):
      inert |= {f"{section}.{f}" for f in optim.unread_schedule_fields(fields["schedule"])}
  return inert


def _visual_batch(run: Run, n: int = 64) -> dict:
  """A fixed batch of real data for reconstructions, interpolations and scatter plots."""
  return run.sampler.visual_batch(run.dataset, n, jax.random.fold_in(run.keys["visualize"], 0))


def write_images(run: Run, models, directory: pathlib.Path, step: int, log: MetricsLog | None = None) -> dict:
  """PNG grids (images) or scatter plots (2-D data) of what `family.visualize` returns."""
  images = run.visualize(run.family.sampling_models(models), _visual_batch(run),
                         jax.random.fold_in(run.keys["visualize"], 1))
  images = jax.device_get(images)
  layout = run.family.visualize_layout()
  paths = {}
  if not parallel.is_main_process():
    return paths
  grids = {}
  for name, imgs in images.items():
    if imgs.ndim == 2:  # 2-D points
      grids[name] = render_scatter(imgs, getattr(run.dataset, "centers", None))
    else:
      grids[name] = make_grid(imgs, layout.get(name, 8))
    paths[name] = str(save_image(_enlarge(grids[name]), directory / f"{name}_{step:07d}.png"))
  if log is not None:
    log.write_images(step, grids)
  return paths


def _enlarge(grid: np.ndarray, min_size: int = 256) -> np.ndarray:
  """Nearest-neighbour enlargement so that small digit grids stay crisp in a browser."""
  scale = max(1, min_size // max(grid.shape[0], grid.shape[1]) + (1 if max(grid.shape[:2]) < min_size else 0))
  scale = min(scale, 4)
  grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  return grid[..., 0] if grid.shape[-1] == 1 else grid


def next_event_step(step: int, num_steps: int, periods: tuple[int, ...], interrupt_at: int | None = None) -> int:
  """The first step > `step` at which the loop must stop dispatching: a multiple of a (non-zero) period, the
  last step, or `interrupt_at` (when it lies ahead). Never beyond `num_steps`."""
  candidates = [num_steps]
  candidates += [(step // p + 1) * p for p in periods if p > 0]
  if interrupt_at is not None and interrupt_at > step:
    candidates.append(interrupt_at)
  return min(candidates)


def steps_for_next_call(step: int, event_step: int, steps_per_dispatch: int) -> int:
  """How many update steps the next dispatch runs: S while S steps fit before `event_step`, else 1."""
  return steps_per_dispatch if event_step - step >= steps_per_dispatch else 1


def train(config, workdir: str | pathlib.Path, *, mesh: Mesh | None = None, family=None,
          progress: bool = True, interrupt_at: int | None = None, restart: bool = False, evaluator=None) -> dict:
  """Trains (or resumes) the run in `workdir`. Returns a summary dict.

  `evaluator`: the during-training evaluation, a factory `(run, config) -> evaluator or None` (train.py passes
  `gen_jax.eval.training_eval.make_training_evaluator`; None: nothing is measured during training). The loop
  uses the evaluator's `every` (steps), `due(step, last)`, `measure(models, stop_requested) -> {name: float}`
  (or None when `stop_requested()` turned True and the evaluation was abandoned),
  `write_protocol(workdir)` and `describe()`.

  `interrupt_at` simulates a SIGTERM arriving after that step (for tests). `restart` moves an earlier run's files
  aside (checkpoint.move_run_aside) and starts from step 0. The workdir is locked (storage/lock.py) throughout.
  """
  main = parallel.is_main_process()
  config_lib.validate_config(config)
  workdir = checkpoint_lib.check_workdir(workdir) if main else pathlib.Path(workdir)
  lock = FolderLock(workdir, "train.py").acquire() if main else None
  try:
    return _train_locked(config, workdir, mesh=mesh, family=family, progress=progress, interrupt_at=interrupt_at,
                         restart=restart, evaluator=evaluator)
  finally:
    if lock is not None:
      lock.release()


def _train_locked(config, workdir: pathlib.Path, *, mesh, family, progress, interrupt_at, restart,
                  evaluator=None) -> dict:
  main = parallel.is_main_process()
  if restart and main:
    moved = checkpoint_lib.move_run_aside(workdir)
    if moved is not None:
      print(f"--restart: the earlier run's files were moved to {moved}; starting from step 0.", flush=True)
  _check_resume_config(workdir, config)   # before loading data and compiling: a wrong --workdir fails at once
  schedule_note = _schedule_change_note(workdir, config)
  if main and not checkpoint_lib.has_checkpoints(workdir):
    checkpoint_lib.refuse_silent_restart(workdir, metrics_log_lib.last_step(workdir / "metrics.jsonl"),
                                         int(config.train.checkpoint_every))
  run = setup(config, mesh, family)
  if main:
    print(data_summary_line(run.dataset), flush=True)
  tc = config.train
  num_steps = int(tc.num_steps)
  log_every, ckpt_every = int(tc.log_every), int(tc.checkpoint_every)
  sample_every = int(tc.sample_every)
  steps_per_dispatch = int(tc.steps_per_dispatch)

  workdir.mkdir(parents=True, exist_ok=True)
  ckpts = Checkpoints(workdir, keep=int(tc.keep_checkpoints))
  log = MetricsLog(workdir, enabled=main)

  restored = ckpts.restore_latest_good(run.abstract_state(), quarantine=True)   # this process holds the lock
  if restored is None:
    state, wall_base, eval_base, start = run.init_state(), 0.0, 0.0, 0
    if main:
      metrics_log_lib.drop_rows_after(log.path, 0)   # rows of a run stopped before its first checkpoint
  else:
    state, meta, start = restored
    wall_base = float(meta.get("train_wall_seconds", 0.0))
    eval_base = float(meta.get("train_eval_seconds", 0.0))   # absent in checkpoints written before it existed
    print(f"Resuming from {ckpts.directory / str(start)} (step {start}).", flush=True)
    if main and schedule_note and start < int(tc.num_steps):
      print(schedule_note(start), flush=True)
    if main:
      metrics_log_lib.drop_rows_after(log.path, start)   # the steps after the checkpoint are logged again
  if main and start < num_steps:   # a rerun with nothing to train keeps the config.json of the run as trained
    config_lib.save_config(config, workdir / "config.json")

  # One compiled function per call size; the S-step one is used whenever S steps fit before the next event,
  # the 1-step one (compiled on first use) to land exactly on an event step.
  # Nothing is compiled when the run is already at num_steps (a rerun of a finished run).
  step_fns = ({n: run.compile_train_step(steps_per_call=n, accumulate=True)
               for n in sorted({1, steps_per_dispatch})} if start < num_steps else {})
  # Every step's metrics are summed on device over the logging window; a log row holds their means.
  zero_sums = (jax.device_get(step_lib.zero_metric_sums(run.family, run.sampler, state, run.data, run.keys,
                                                        run.mesh)) if start < num_steps else {})
  replicated = parallel.replicated(run.mesh)
  training_eval = evaluator(run, config) if evaluator is not None else None
  if training_eval is not None and main:
    training_eval.write_protocol(workdir)
    print(f"Sample quality during training: {training_eval.describe()}.", flush=True)
  eval_every = training_eval.every if training_eval is not None else 0
  event_periods = (log_every, ckpt_every, sample_every, eval_every)
  shortest = min(p for p in event_periods if p > 0)
  if steps_per_dispatch > shortest and main:
    print(f"Note: config.train.steps_per_dispatch={steps_per_dispatch} exceeds the shortest of log_every / "
          f"checkpoint_every / sample_every / eval_every ({shortest}), so most calls run single steps; raise those "
          f"periods to a multiple of {steps_per_dispatch} to get {steps_per_dispatch} steps per call.", flush=True)
  if (steps_per_dispatch > 1 and main and config.model.arch != "mlp"
      and run.mesh.devices.flat[0].platform == "cpu"):
    print(f"Note: config.train.steps_per_dispatch={steps_per_dispatch} with a convolutional model on CPU: "
          "XLA:CPU runs a convolution's kernel gradient inside the multi-step loop on a slow generic path "
          "(measured 14x slower for the conv VAE step); use steps_per_dispatch=1 for convolutional models on "
          "CPU.", flush=True)
  meta_base = {"config": config_lib.to_dict(config), "dataset": run.dataset.source,
               "num_devices": run.mesh.devices.size, "device_kind": jax.devices()[0].device_kind}

  # train_wall_seconds: the whole wall time of the run (cumulative over resumes); train_eval_seconds: the part of
  # it spent on the during-training evaluation and on writing image grids, so training alone = the difference.
  def save(step: int, state) -> bool:
    if not bool(_all_finite(state.models)):
      return False
    ckpts.save(step, state, dict(meta_base, step=step, train_wall_seconds=wall_base + (time.time() - t_start),
                                 train_eval_seconds=eval_base + eval_seconds))
    return True

  # XLA:CPU runs the devices of a multi-device mesh on one shared thread pool; with several steps in
  # flight their collectives can wait on each other forever (seen with 8 fake devices on 2 cores).
  # On CPU, dispatching ahead gains little, so wait for each call there. Accelerators run ahead.
  sync_each_call = jax.default_backend() == "cpu" and run.mesh.devices.size > 1
  step = start
  last_saved = start if restored is not None else None
  t_start = time.time()
  t_log, step_log = t_start, start
  eval_seconds = 0.0   # this session's share of train_eval_seconds
  if (training_eval is not None and restored is not None and training_eval.due(start, start == num_steps)
      and not metrics_log_lib.has_row(log.path, start, split="eval")):
    # The checkpoint of an evaluation step was saved but its row was not (a stop between the two, or a SIGTERM at
    # that step, which skips the evaluation): measure those weights now, so the curve has no gap.
    t_eval = time.time()
    log.write(start, training_eval.measure(state.models), split="eval")
    eval_seconds += time.time() - t_eval
    t_log += time.time() - t_eval
  images_per_step = int(config.data.batch_size) * int(run.family.capabilities.batches_per_step)
  latest: dict[str, float] = {}
  sums, window = jax.device_put(zero_sums, replicated), 0
  loss_watch = metrics_log_lib.LossWatch()
  stopped_by = None
  bar = tqdm(total=num_steps, initial=start, disable=not (progress and main), desc=f"train {run.family.name}",
             unit="step", dynamic_ncols=True, smoothing=0.1)

  def save_or_stop(step: int, state) -> None:
    """Checkpoints `step`, or stops the run keeping the last good checkpoint when the parameters are not finite."""
    if not save(step, state):
      raise NonFiniteLossError(
          f"parameters became NaN/Inf by step {step}; not saving them. The last good checkpoint "
          f"(step {last_saved}) in {ckpts.directory} is kept. Lower the learning rate or clip gradients.")

  def write_row(step: int) -> None:
    """The train row of the steps since the last one (their mean metrics, speed and wall time)."""
    nonlocal sums, window, latest, t_log, step_log
    latest = {k: float(v) / window for k, v in jax.device_get(sums).items()}
    latest["averaged_over"] = window   # steps since the last row: every metric above is their mean
    sums, window = jax.device_put(zero_sums, replicated), 0
    now = time.time()
    latest["steps_per_sec"] = (step - step_log) / max(now - t_log, 1e-9)
    # real training images consumed per second: a step of a GAN with n_critic > 1 reads n_critic batches
    latest["examples_per_sec"] = latest["steps_per_sec"] * images_per_step
    latest["wall_seconds"] = wall_base + now - t_start
    t_log, step_log = now, step
    bad = sorted(k for k, v in latest.items() if not np.isfinite(v))
    if bad:
      raise NonFiniteLossError(
          f"{', '.join(bad)} became NaN/Inf at step {step} (metrics {_fmt(latest)}). Training stopped; the last "
          f"good checkpoint ({'step ' + str(last_saved) if last_saved is not None else 'none yet'}) in "
          f"{ckpts.directory} is kept. Try a lower config.optimizer.learning_rate, "
          f"config.optimizer.grad_clip_norm=1.0, or a warm-up (config.optimizer.warmup_steps).")
    log.write(step, latest)
    for line in loss_watch.check(step, latest):
      print(line, flush=True)
    bar.set_postfix({k: f"{latest[k]:.4g}" for k in run.family.progress_metrics if k in latest}, refresh=False)

  try:
    if early_interrupt_pending():   # a Ctrl-C during imports, data loading or compiling (train.py's handler)
      raise KeyboardInterrupt
    with _StopFlag() as stop:
      while step < num_steps:
        n = steps_for_next_call(step, next_event_step(step, num_steps, event_periods, interrupt_at),
                                steps_per_dispatch)
        state, sums = step_fns[n](state, sums, run.data, run.keys)
        if sync_each_call:
          jax.block_until_ready(state.step)
        step += n
        window += n
        bar.update(n)
        if interrupt_at is not None and step >= interrupt_at:
          stop.signal_name = "SIGTERM (simulated)"
        stopping = stop.signal_name is not None
        last = step == num_steps
        if step % log_every == 0 or last or stopping or step % ckpt_every == 0:
          write_row(step)
        if step % ckpt_every == 0 or last or stopping:
          save_or_stop(step, state)
          last_saved = step
        images_due = main and ((sample_every and step % sample_every == 0) or last)
        eval_due = training_eval is not None and not stopping and training_eval.due(step, last)
        if images_due or eval_due:
          t_eval = time.time()
          if images_due:
            write_images(run, state.models, workdir / "images", step, log)
          if eval_due:
            row = training_eval.measure(state.models, stop_requested=lambda: stop.signal_name is not None)
            if row is not None:
              log.write(step, row, split="eval")
          spent = time.time() - t_eval
          eval_seconds += spent
          t_log += spent   # steps/s counts training only
          if eval_due and row is None:
            # A signal arrived during the evaluation, which was abandoned to stop promptly (a scheduler's grace
            # period is often 30 s; an evaluation on colour data takes about a minute on a CPU). Save this step
            # unless it was just saved: the resumed run measures it first, so the curve has no gap.
            stopping = True
            if last_saved != step:
              if window:
                write_row(step)
              save_or_stop(step, state)
              last_saved = step
        if stopping:
          stopped_by = stop.signal_name
          break
  finally:
    bar.close()
    ckpts.close()
    log.close()
  if stopped_by:
    print(f"Stopped by {stopped_by} at step {step}; checkpoint saved in {ckpts.directory}. "
          f"Rerun the same command to resume.", flush=True)
  return {"step": step, "start_step": start, "num_steps": num_steps, "metrics": latest, "stopped_by": stopped_by,
          "workdir": str(workdir), "state": state, "progress_metrics": tuple(run.family.progress_metrics)}


def done_message(summary: dict) -> str:
  """train.py's last line: the step reached and its progress metrics, or why nothing was trained."""
  step, num_steps, workdir = summary["step"], summary.get("num_steps"), summary["workdir"]
  if num_steps is not None and summary.get("start_step") == step and step >= num_steps:
    return (f"already at step {step} >= config.train.num_steps={num_steps}: nothing to train; raise "
            f"--config.train.num_steps to continue, evaluate with `python eval.py --workdir={workdir}`")
  shown = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items() if k in summary["progress_metrics"])
  samples = pathlib.Path(workdir) / "images" / f"samples_{step:07d}.png"   # the file a newcomer looks for first
  look = f"; samples: {samples}" if samples.is_file() else ""
  return f"done: step {step}{', ' + shown if shown else ''}; outputs in {workdir}{look}"


def _fmt(metrics: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
