"""optax optimizers and learning-rate schedules built from `config.optimizer`.

Fields: name (adam | adamw | sgd | rmsprop), learning_rate, schedule
(constant | linear | cosine | warmup_cosine | constant_cosine | exponential | burda), warmup_steps,
decay_rate (exponential: factor per `decay_steps`), decay_steps, decay_fraction
(constant_cosine: the closing part of the run that decays), final_lr_fraction (cosine,
warmup_cosine, constant_cosine, linear: the last learning rate as a fraction of the first),
stage_steps (burda), b1, b2, eps, momentum (sgd), weight_decay (decoupled for adamw,
L2 added to the gradient otherwise), grad_clip_norm (0 = off).

'linear' falls in a straight line from learning_rate at step 0 to final_lr_fraction * learning_rate at the
last step (Mimicry's SNGAN: to 0 over the run).

'burda' is the schedule of Burda et al. 2015: stage i = 0..7 lasts 3^i
units at learning rate lr * 10^(-i/7). With stage_steps = steps per epoch the
units are epochs as in the paper (3280 epochs in all; a shorter run is the
paper's schedule cut short, a longer one stays at the last rate). With
stage_steps = 0 the stages are scaled to fill config.train.num_steps in the
same proportions, which spends two thirds of any budget at the last rate:
measured worse than a constant rate for runs shorter than the paper's
(NOTES.md).
"""
from __future__ import annotations

import optax

from gen_jax.errors import ConfigError


# The optimizer fields each schedule reads besides learning_rate. A run's other schedule fields change nothing,
# so resuming with a different value of one of them is allowed (train/loop.py).
SCHEDULE_FIELDS = {
    "constant": ("warmup_steps",),
    "linear": ("final_lr_fraction",),
    "cosine": ("final_lr_fraction",),
    "warmup_cosine": ("warmup_steps", "final_lr_fraction"),
    "constant_cosine": ("decay_fraction", "final_lr_fraction"),
    "exponential": ("decay_steps", "decay_rate"),
    "burda": ("stage_steps",),
}
SCHEDULES = tuple(SCHEDULE_FIELDS)
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def unread_schedule_fields(schedule: str) -> set[str]:
  """Schedule fields that `schedule` ignores (all of them for an unknown name: none is known to be read)."""
  every = {f for fields in SCHEDULE_FIELDS.values() for f in fields}
  return every - set(SCHEDULE_FIELDS.get(schedule, every))


def burda_schedule(base_lr: float, num_steps: int, stage_steps: int = 0) -> optax.Schedule:
  units = [3 ** i for i in range(8)]
  total = sum(units)
  boundaries, acc = {}, 0
  for i, u in enumerate(units[:-1]):
    acc += u
    step = acc * stage_steps if stage_steps > 0 else round(acc / total * num_steps)
    boundaries[max(1, step)] = 10 ** (-1 / 7)
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def constant_cosine_schedule(lr: float, num_steps: int, decay_fraction: float,
                             final_lr_fraction: float) -> optax.Schedule:
  """lr for the first (1 - decay_fraction) of the run, then a half cosine down to final_lr_fraction * lr."""
  decay = max(1, round(decay_fraction * num_steps))
  start = max(0, num_steps - decay)
  return optax.join_schedules(
      [optax.constant_schedule(lr), optax.cosine_decay_schedule(lr, decay, alpha=final_lr_fraction)], [start])


def make_schedule(cfg, num_steps: int) -> optax.Schedule:
  lr = float(cfg.learning_rate)
  name = cfg.schedule
  warmup = int(cfg.warmup_steps)
  if name == "constant":
    sched = optax.constant_schedule(lr)
    if warmup:
      sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched
  final = float(cfg.final_lr_fraction)
  if name == "linear":
    return optax.linear_schedule(lr, final * lr, max(1, num_steps))
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, max(1, num_steps), alpha=final)
  if name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(warmup + 1, num_steps), end_value=final * lr)
  if name == "constant_cosine":
    return constant_cosine_schedule(lr, num_steps, float(cfg.decay_fraction), final)
  if name == "exponential":
    return optax.exponential_decay(lr, int(cfg.decay_steps), float(cfg.decay_rate))
  if name == "burda":
    return burda_schedule(lr, num_steps, int(cfg.stage_steps))
  raise ConfigError(f"config.optimizer.schedule={name!r} is not valid; choose one of {', '.join(SCHEDULES)}")


def schedule_horizon(config) -> int:
  """The number of steps the learning-rate schedules span: config.train.schedule_steps, or train.num_steps when 0.
  Fixing it lets a finished run be extended (a larger num_steps) without changing the schedule it was trained on."""
  return int(config.train.schedule_steps) or int(config.train.num_steps)


def make_optimizer(cfg, num_steps: int) -> optax.GradientTransformation:
  """The full transformation: clipping -> (L2) -> optimizer with schedule."""
  sched = make_schedule(cfg, num_steps)
  name = cfg.name
  wd = float(cfg.weight_decay)
  b1, b2, eps = float(cfg.b1), float(cfg.b2), float(cfg.eps)
  if name == "adam":
    opt = optax.adam(sched, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    opt = optax.adamw(sched, b1=b1, b2=b2, eps=eps, weight_decay=wd)
  elif name == "sgd":
    opt = optax.sgd(sched, momentum=float(cfg.momentum) or None)
  elif name == "rmsprop":
    opt = optax.rmsprop(sched, eps=eps)
  else:
    raise ConfigError(f"config.optimizer.name={name!r} is not valid; choose one of {', '.join(OPTIMIZERS)}")
  chain = []
  clip = float(cfg.grad_clip_norm)
  if clip > 0:
    chain.append(optax.clip_by_global_norm(clip))
  if wd > 0 and name != "adamw":
    chain.append(optax.add_decayed_weights(wd))
  chain.append(opt)
  return optax.chain(*chain)
