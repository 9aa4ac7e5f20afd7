"""Loading, overriding, validating and saving experiment configs.

A config is a Python file whose `get_config(arg=None)` returns an
`ml_collections.ConfigDict`. On the command line it is named as
`--config=configs/vae.py[:variant]` and any field can be overridden with
`--config.train.num_steps=2000`. Overrides of keys that do not exist, and
values of the wrong type or outside their allowed set, fail at start-up with
a `ConfigError` that names the key.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import pathlib
from typing import Any, Callable, Iterable, Sequence

import ml_collections

from gen_jax.errors import CheckpointError, ConfigError

ConfigDict = ml_collections.ConfigDict
_MISSING = object()


def load_get_config_file(spec: str, kind: str = "config", call: str = "get_config()",
                         missing_hint: Callable[[], str] = lambda: "") -> tuple[ConfigDict, str, str]:
  """Imports the Python file of `path.py[:arg]` and returns (its get_config(arg) or get_config(), path, arg).

  The one loader of config files and study files: `kind` ('config', 'study') names the file in errors, `call` the
  function it must define, `missing_hint()` the fix appended when the file does not exist (e.g. the files there
  are). A ValueError raised by get_config (an unknown variant) becomes a ConfigError with its message.
  """
  path, _, arg = spec.partition(":")
  file = pathlib.Path(path)
  if not file.is_file():
    raise ConfigError(f"{kind} file {path!r} does not exist{missing_hint()}")
  module_spec = importlib.util.spec_from_file_location(f"gen_jax_{kind}_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{kind} file {path} has no {call} function")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"{path}: get_config() must return an ml_collections.ConfigDict, got {type(config).__name__}")
  return config, path, arg


def load_config_file(spec: str) -> ConfigDict:
  """Imports `path.py[:arg]` and returns its `get_config(arg)`."""
  def available() -> str:
    names = sorted(p.name for p in configs_dir().glob("*.py") if p.name != "__init__.py")
    return f"; pass --config=configs/<name>.py (available: {', '.join(names)})"
  return load_get_config_file(spec, missing_hint=available)[0]


def configs_dir() -> pathlib.Path:
  """The repository's configs/ folder."""
  return pathlib.Path(__file__).resolve().parents[1] / "configs"


def _parse_value(text: str, current: Any, key: str) -> Any:
  """Parses `text` into the type of the value it replaces."""
  if isinstance(current, bool):
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ConfigError(f"config.{key} must be true or false, got {text!r}")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise ConfigError(f"config.{key} must be an integer, got {text!r}") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ConfigError(f"config.{key} must be a number, got {text!r}") from None
  if isinstance(current, (tuple, list)):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise ConfigError(f"config.{key} must be a tuple such as '(200, 200)', got {text!r}") from None
    if not isinstance(value, (tuple, list)):
      value = (value,)
    return tuple(value)
  if isinstance(current, str):
    return text
  # None or other: best effort literal, else string.
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def set_by_path(config: ConfigDict, dotted_key: str, raw_value: str) -> None:
  """Sets `config.<dotted_key>` from a command-line string; unknown keys fail."""
  parts = dotted_key.split(".")
  node = config
  for i, part in enumerate(parts):
    here = ".".join(parts[:i])
    if not isinstance(node, ConfigDict) or part not in node:
      options = list(node.keys()) if isinstance(node, ConfigDict) else []
      close = difflib.get_close_matches(part, options, n=1)
      hint = f" Did you mean config.{'.'.join(parts[:i] + [close[0]])}?" if close else ""
      where = f"config.{here}" if here else "config"
      raise ConfigError(f"unknown config key 'config.{dotted_key}'.{hint} "
                        f"Valid keys under {where}: {', '.join(sorted(options))}")
    if i < len(parts) - 1:
      node = node[part]
  current = node[parts[-1]]
  if isinstance(current, ConfigDict):
    raise ConfigError(f"config.{dotted_key} is a section, not a value; set one of its keys: "
                      f"{', '.join(sorted(current.keys()))}")
  with node.unlocked():
    node[parts[-1]] = _parse_value(raw_value, current, dotted_key)


def apply_overrides(config: ConfigDict, overrides: Iterable[str]) -> ConfigDict:
  """Applies overrides written as 'train.num_steps=10' (optionally with a 'config.' prefix)."""
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep:
      raise ConfigError(f"config override {item!r} must look like --config.train.num_steps=100")
    key = key.strip().removeprefix("--").removeprefix("config.")
    set_by_path(config, key, value)
  return config


def split_config_args(argv: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
  """Separates '--config=...' and '--config.x=y' from other command-line arguments."""
  spec, overrides, rest = None, [], []
  args = list(argv)
  i = 0
  while i < len(args):
    arg = args[i]
    if arg == "--config" and i + 1 < len(args):
      spec = args[i + 1]
      i += 2
      continue
    if arg.startswith("--config="):
      spec = arg.split("=", 1)[1]
    elif arg.startswith("--config."):
      body = arg[len("--config."):]
      if "=" not in body and i + 1 < len(args):
        body = f"{body}={args[i + 1]}"
        i += 1
      overrides.append(body)
    else:
      rest.append(arg)
    i += 1
  return spec, overrides, rest


# --------------------------------------------------------------------------- validation

def _choices() -> dict[str, tuple]:
  """Each key's allowed values, read from the module that implements the choice (imported here, late: they pull
  in jax, and `import gen_jax.config` stays light)."""
  from gen_jax import cpu_kernels  # noqa: PLC0415
  from gen_jax import schema  # noqa: PLC0415
  from gen_jax.data import registry as data_registry  # noqa: PLC0415
  from gen_jax.models import optim, precision  # noqa: PLC0415
  from gen_jax.models import registry as family_registry  # noqa: PLC0415
  from gen_jax.nets import layers, resnet_gan  # noqa: PLC0415
  from gen_jax.objectives import gan, likelihoods, vae  # noqa: PLC0415
  return {
      "model.family": family_registry.family_names(),
      "gan.loss": gan.GAN_LOSSES,
      "d_optimizer.name": optim.OPTIMIZERS,
      "d_optimizer.schedule": optim.SCHEDULES,
      "model.likelihood": likelihoods.LIKELIHOODS,
      "model.activation": tuple(layers.ACTIVATIONS),
      "model.upsample": layers.UPSAMPLE_METHODS,
      "model.d_layout": resnet_gan.D_LAYOUTS,
      "objective.name": vae.OBJECTIVES,
      "objective.gradient": vae.GRADIENT_ESTIMATORS,
      "optimizer.name": optim.OPTIMIZERS,
      "optimizer.schedule": optim.SCHEDULES,
      "data.binarization": data_registry.BINARIZATIONS,
      "train.compute_dtype": tuple(precision.COMPUTE_DTYPES),
      "train.cpu_conv_kernels": cpu_kernels.CPU_CONV_KERNELS,
      "eval.imputation_chain": schema.IMPUTATION_CHAINS,
  }

_POSITIVE = ("data.batch_size", "train.num_steps", "train.log_every", "train.checkpoint_every",
             "train.keep_checkpoints", "model.latent_dim", "objective.num_samples",
             "optimizer.learning_rate", "d_optimizer.learning_rate", "gan.n_critic", "train.steps_per_dispatch",
             "eval.num_samples", "eval.kid_subsets", "eval.kid_subset_size", "eval.pr_k", "eval.dc_k",
             "eval.ppl_epsilon", "eval.cas_steps", "train.eval_samples")
_NON_NEGATIVE = ("objective.beta", "objective.kl_warmup_steps", "objective.free_bits",
                 "optimizer.grad_clip_norm", "optimizer.weight_decay", "optimizer.warmup_steps",
                 "train.ema_decay", "train.schedule_steps", "train.sample_every", "train.eval_every", "eval.num_importance_samples", "gan.gp_weight",
                 "gan.r1_weight", "gan.clip_value", "vaegan.gamma", "eval.ppl_samples", "eval.imputation_examples",
                 "eval.imputation_steps", "eval.cas_samples", "eval.cas_real_subset", "eval.num_devices")


def get_by_path(config: ConfigDict, dotted_key: str, default: Any = None) -> Any:
  node = config
  for part in dotted_key.split("."):
    if not isinstance(node, (ConfigDict, dict)) or part not in node:
      return default
    node = node[part]
  return node


def validate_config(config: ConfigDict) -> ConfigDict:
  """Checks required fields, allowed choices and ranges; raises ConfigError naming the key. Evaluation's own
  keys (eval.suites, eval.reference_split) are checked by gen_jax.eval.suite.validate_eval_config."""
  for key in ("seed", "data.name", "data.batch_size", "train.num_steps", "train.log_every",
              "train.checkpoint_every", "model.family", "optimizer.name", "optimizer.learning_rate"):
    if get_by_path(config, key, _MISSING) is _MISSING:
      raise ConfigError(f"config.{key} is missing; every config must define it (see configs/vae.py)")
  from gen_jax.data import registry  # noqa: PLC0415 (numpy only; keeps `import gen_jax.config` light)
  if config.data.name not in registry.DATASET_NAMES:   # before any check that reads the data's kind
    raise ConfigError(registry.unknown_name_message(config.data.name))
  for key, choices in _choices().items():
    value = get_by_path(config, key, _MISSING)
    if value is not _MISSING and value not in choices:
      raise ConfigError(f"config.{key}={value!r} is not valid; choose one of {', '.join(choices)}")
  for key in _POSITIVE:
    value = get_by_path(config, key, _MISSING)
    if value is not _MISSING and not value > 0:
      raise ConfigError(f"config.{key} must be > 0, got {value!r}")
  for key in _NON_NEGATIVE:
    value = get_by_path(config, key, _MISSING)
    if value is not _MISSING and value < 0:
      raise ConfigError(f"config.{key} must be >= 0, got {value!r}")
  for section in ("optimizer", "d_optimizer"):
    for key, low_open in (("decay_fraction", True), ("final_lr_fraction", False)):
      value = get_by_path(config, f"{section}.{key}", _MISSING)
      if value is _MISSING:
        continue
      above_low = value > 0.0 if low_open else value >= 0.0
      if not (above_low and value <= 1.0):
        raise ConfigError(f"config.{section}.{key} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")
    stage = get_by_path(config, f"{section}.stage_steps", 0)
    if stage < 0:
      raise ConfigError(f"config.{section}.stage_steps must be >= 0 (0 = scale Burda's stages to the run), "
                        f"got {stage!r}")
  if get_by_path(config, "train.eval_every", 0) and get_by_path(config, "train.eval_samples", 2) < 2:
    raise ConfigError(f"config.train.eval_samples must be >= 2 (a Frechet distance needs a covariance), got "
                      f"{get_by_path(config, 'train.eval_samples')!r}")
  ema = get_by_path(config, "train.ema_decay", 0.0)
  if not 0.0 <= ema < 1.0:
    raise ConfigError(f"config.train.ema_decay must be in [0, 1), got {ema!r}")
  from gen_jax.models import registry as family_registry  # noqa: PLC0415
  family_registry.family_class(config.model.family).validate_config(config)
  return config


def check_arch(config: ConfigDict, archs: Sequence[str]) -> None:
  """ConfigError unless config.model.arch is one of the archs the config's family builds."""
  if config.model.arch not in archs:
    raise ConfigError(f"config.model.arch={config.model.arch!r} is not available for config.model.family="
                      f"{config.model.family!r}; choose one of {', '.join(archs)}")


def dreg_error(config: ConfigDict) -> ConfigError:
  """objective.gradient='dreg' outside the IWAE objective of the VAE family."""
  return ConfigError(f"config.objective.gradient='dreg' is the doubly reparameterized gradient of the IWAE bound; "
                     f"this config has model.family={config.model.family!r}, objective.name="
                     f"{config.objective.name!r}. Use it with the 'vae' family and "
                     f"objective.name='iwae' (num_samples=1 is the 'sticking the landing' ELBO gradient), or leave "
                     f"it at 'reparam'")


def check_adversarial_family(config: ConfigDict, archs: Sequence[str], sections: Sequence[str]) -> ConfigDict:
  """The rules the GAN and VAE-GAN families share: no VAE gradient estimator, their archs, their sections."""
  if config.objective.gradient == "dreg":
    raise dreg_error(config)
  check_arch(config, archs)
  for section in sections:
    if section not in config:
      raise ConfigError(f"config.{section} is missing; a {config.model.family} config needs it (see configs/gan.py)")
  return config


def to_dict(config: ConfigDict) -> dict:
  """A JSON-serializable copy (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def from_dict(data: dict) -> ConfigDict:
  """Inverse of `to_dict`: lists become tuples again so types match the original."""
  def fix(node):
    if isinstance(node, dict):
      return {k: fix(v) for k, v in node.items()}
    if isinstance(node, list):
      return tuple(fix(v) for v in node)
    return node
  return ConfigDict(fix(data))


def save_config(config: ConfigDict, path: pathlib.Path) -> None:
  from gen_jax.storage.atomic import write_text_atomic   # config.json is read back at every resume and evaluation
  write_text_atomic(path, json.dumps(to_dict(config), indent=2, sort_keys=True))


def load_saved_config(path: pathlib.Path) -> ConfigDict:
  """The config a run was trained with; keys added to gen_jax since then get today's defaults."""
  if not path.exists():
    raise ConfigError(f"{path} not found: is this a gen_jax workdir? Train first with "
                      f"`python train.py --config=configs/vae.py --workdir={path.parent}`")
  saved = from_dict(read_saved_config_json(path))
  return fill_missing_defaults(saved, default_config(get_by_path(saved, "model.family", "vae")))


def read_saved_config_json(path: pathlib.Path) -> dict:
  """`<workdir>/config.json` as written (a dict); CheckpointError naming the file and the fix if it is unreadable."""
  path = pathlib.Path(path)
  try:
    data = json.loads(path.read_text())
    problem = None if isinstance(data, dict) else f"holds a JSON {type(data).__name__}, not an object"
  except json.JSONDecodeError as e:
    problem = f"is not valid JSON ({e}; truncated or hand-edited?)"
  except (UnicodeDecodeError, OSError) as e:
    problem = f"cannot be read ({type(e).__name__}: {e})"
  if problem is None:
    return data
  copies = sorted(path.parent.glob("checkpoints/*/meta/metadata"),
                  key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else -1)
  copy = (f"the copy in the \"config\" entry of {copies[-1]} (every checkpoint keeps one)" if copies
          else "a backup")
  raise CheckpointError(f"{path} (the config this run was trained with) {problem}. Fix: restore it from {copy}, "
                        f"or start a new run with another --workdir.")


def default_config(family: str = "vae") -> ConfigDict:
  """The schema's defaults for a model family: schema.base() (every key any part of gen_jax reads), plus the
  sections the family adds (d_optimizer, gan, vaegan for the GAN families)."""
  from gen_jax import schema  # noqa: PLC0415
  return schema.for_family(family)


def fill_missing_defaults(config: ConfigDict, defaults: ConfigDict) -> ConfigDict:
  """Adds every key of `defaults` that `config` lacks (recursively), keeping the values `config` has."""
  with config.unlocked():
    for key, value in defaults.items():
      if key not in config:
        config[key] = value
      elif isinstance(value, ConfigDict) and isinstance(config[key], ConfigDict):
        fill_missing_defaults(config[key], value)
  return config


def diff_configs(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Keys whose values differ between two config dicts (for resume checks)."""
  out = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
    name = f"{prefix}{key}"
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff_configs(va, vb, name + ".")
    elif va != vb:
      out.append(name)
  return out
