"""Config loading: overrides, unknown keys, invalid values, variants — each error names the key."""
import subprocess
import sys

import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError

from conftest import REPO_ROOT


def load(spec="configs/vae.py"):
  return config_lib.load_config_file(str(REPO_ROOT / spec))


def test_overrides_are_typed():
  c = load()
  config_lib.apply_overrides(c, ["train.num_steps=7", "optimizer.learning_rate=3e-4", "model.hidden=(64, 32)",
                                 "model.conditional=true", "--config.data.data_dir=/tmp/x"])
  assert c.train.num_steps == 7 and isinstance(c.train.num_steps, int)
  assert c.optimizer.learning_rate == pytest.approx(3e-4)
  assert c.model.hidden == (64, 32)
  assert c.model.conditional is True
  assert c.data.data_dir == "/tmp/x"


def test_unknown_key_names_key_and_suggests():
  with pytest.raises(ConfigError, match=r"config\.train\.num_step'.*Did you mean config\.train\.num_steps"):
    config_lib.apply_overrides(load(), ["train.num_step=3"])
  with pytest.raises(ConfigError, match="unknown config key 'config.trian.num_steps'"):
    config_lib.apply_overrides(load(), ["trian.num_steps=3"])


@pytest.mark.parametrize("override,pattern", [
    ("train.num_steps=abc", r"config\.train\.num_steps must be an integer"),
    ("model.conditional=maybe", r"config\.model\.conditional must be true or false"),
])
def test_badly_typed_value(override, pattern):
  with pytest.raises(ConfigError, match=pattern):
    config_lib.apply_overrides(load(), [override])


@pytest.mark.parametrize("override,pattern", [
    ("model.likelihood=poisson", r"config\.model\.likelihood='poisson' is not valid"),
    ("train.num_steps=0", r"config\.train\.num_steps must be > 0"),
    ("objective.beta=-1", r"config\.objective\.beta must be >= 0"),
    ("optimizer.schedule=step", r"config\.optimizer\.schedule='step' is not valid"),
    ("model.likelihood=logistic", r"bernoulli|binary|grey"),
])
def test_invalid_values_fail_validation(override, pattern):
  c = load()
  config_lib.apply_overrides(c, [override])
  with pytest.raises(ConfigError, match=pattern):
    config_lib.validate_config(c)


def test_iwae_rejects_beta():
  c = load("configs/iwae.py:k5")
  config_lib.apply_overrides(c, ["objective.beta=2.0"])
  with pytest.raises(ConfigError, match=r"config\.objective\.beta has no meaning for the IWAE"):
    config_lib.validate_config(c)


def test_dreg_only_with_the_iwae_objective():
  assert config_lib.validate_config(load("configs/iwae.py:k5,dreg")).objective.gradient == "dreg"
  for spec in ("configs/vae.py", "configs/vaegan.py"):
    c = load(spec)
    config_lib.apply_overrides(c, ["objective.gradient=dreg"])
    with pytest.raises(ConfigError, match=r"gradient='dreg' is the doubly reparameterized gradient of the IWAE"):
      config_lib.validate_config(c)


def test_variants():
  assert load("configs/vae.py:conv").model.arch == "conv"
  assert load("configs/iwae.py:k50").objective.num_samples == 50
  assert load("configs/iwae.py:k5,dreg").objective.gradient == "dreg"
  with pytest.raises(ConfigError, match="unknown or repeated variant"):
    load("configs/iwae.py:k5,dreeg")
  with pytest.raises(ConfigError, match="unknown variant"):
    load("configs/vae.py:convv")
  with pytest.raises(ConfigError, match="does not exist"):
    load("configs/nope.py")
  # Every config file refuses a variant it does not know (configs/cvae.py:cifar10 once loaded binarized MNIST).
  for path in sorted(p.name for p in (REPO_ROOT / "configs").glob("*.py") if p.name != "__init__.py"):
    with pytest.raises(ConfigError, match="unknown"):
      load(f"configs/{path}:cifar100")


def test_saved_config_round_trip(tmp_path):
  c = load("configs/vae.py:conv")
  config_lib.save_config(c, tmp_path / "config.json")
  back = config_lib.load_saved_config(tmp_path / "config.json")
  assert config_lib.diff_configs(config_lib.to_dict(c), config_lib.to_dict(back)) == []
  assert back.model.features == c.model.features and isinstance(back.model.features, tuple)


def test_cli_unknown_key_is_a_clean_error():
  """The command line prints one clear line, no traceback, exit code 2."""
  proc = subprocess.run([sys.executable, "train.py", "--config=configs/vae.py", "--workdir=/tmp/never",
                         "--config.train.num_step=3"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "unknown config key 'config.train.num_step'" in proc.stderr
  assert "Did you mean config.train.num_steps" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_saved_config_of_an_older_run_gets_todays_defaults_for_new_keys(tmp_path):
  """A run trained before a key existed (e.g. eval.suites) still evaluates; its own values are kept."""
  import json
  from gen_jax import schema
  saved = config_lib.to_dict(schema.base())
  del saved["eval"]["suites"]
  saved["eval"]["num_samples"] = 123
  (tmp_path / "config.json").write_text(json.dumps(saved))
  config = config_lib.load_saved_config(tmp_path / "config.json")
  assert tuple(config.eval.suites) == tuple(schema.base().eval.suites)
  assert config.eval.num_samples == 123


@pytest.mark.parametrize("spec", ["configs/gan_toy.py:grid", "configs/vaegan.py"])
def test_saved_gan_config_gets_its_familys_defaults_for_new_keys(spec, tmp_path):
  """d_optimizer, gan and vaegan exist only in GAN / VAE-GAN configs: a run saved before one of their keys
  existed gets that section's default (it had been refused: 'trained with today's default None')."""
  import json
  config = load(spec)
  saved = config_lib.to_dict(config)
  del saved["d_optimizer"]["final_lr_fraction"], saved["gan"]["clip_value"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  back = config_lib.load_saved_config(tmp_path / "config.json")
  assert back.d_optimizer.final_lr_fraction == 0.0 and back.gan.clip_value == 0.0
  assert config_lib.diff_configs(config_lib.to_dict(config), config_lib.to_dict(back)) == []


@pytest.mark.parametrize("spec", ["configs/vae.py", "configs/gan.py", "configs/iwae.py"])
def test_typo_in_dataset_name_is_reported_before_likelihood_checks(spec):
  """A misspelt data.name says so (with a suggestion) on every family, not 'bernoulli needs binary data'."""
  c = load(spec)
  config_lib.apply_overrides(c, ["data.name=mnsit"])
  with pytest.raises(ConfigError) as e:
    config_lib.validate_config(c)
  msg = str(e.value)
  assert msg.startswith("Unknown dataset name 'mnsit'. Did you mean 'mnist'?") and "--config.data.name" in msg
  assert "bernoulli" not in msg


def test_corrupt_saved_config_is_a_checkpoint_error_naming_file_and_fix(tmp_path):
  from gen_jax.errors import CheckpointError
  path = tmp_path / "config.json"
  config_lib.save_config(load(), path)
  path.write_text(path.read_text()[:100])   # truncated
  with pytest.raises(CheckpointError) as e:
    config_lib.load_saved_config(path)
  msg = str(e.value)
  assert str(path) in msg and "is not valid JSON" in msg and "Fix: restore it from a backup" in msg
  assert "another --workdir" in msg
  # With checkpoints, the fix names the newest checkpoint's copy of the config.
  for step in (5, 10):
    (tmp_path / "checkpoints" / str(step) / "meta").mkdir(parents=True)
    (tmp_path / "checkpoints" / str(step) / "meta" / "metadata").write_text("{}")
  with pytest.raises(CheckpointError, match=r"\"config\" entry of .*checkpoints/10/meta/metadata"):
    config_lib.load_saved_config(path)
  path.write_text("[1, 2]")
  with pytest.raises(CheckpointError, match="holds a JSON list, not an object"):
    config_lib.load_saved_config(path)


def test_choice_lists_are_read_from_the_modules_that_implement_them(monkeypatch):
  """A new GAN loss is one edit in objectives/gan.py: the config check reads its list from there."""
  from gen_jax.objectives import gan
  c = load("configs/gan.py")
  config_lib.apply_overrides(c, ["gan.loss=relativistic"])
  with pytest.raises(ConfigError, match=r"config\.gan\.loss='relativistic' is not valid; choose one of minimax"):
    config_lib.validate_config(c)
  monkeypatch.setattr(gan, "GAN_LOSSES", gan.GAN_LOSSES + ("relativistic",))
  assert config_lib.validate_config(c).gan.loss == "relativistic"


@pytest.mark.parametrize("spec,arch,allowed", [("configs/vae.py", "dcgan", "mlp, conv"),
                                               ("configs/vaegan.py", "mlp", "dcgan, resnet")])
def test_each_family_names_its_own_archs(spec, arch, allowed):
  c = load(spec)
  config_lib.apply_overrides(c, [f"model.arch={arch}"])
  with pytest.raises(ConfigError, match=rf"config\.model\.arch='{arch}' is not available for config\.model\.family="
                                        rf"'{c.model.family}'; choose one of {allowed}$"):
    config_lib.validate_config(c)


def test_default_config_is_the_schema_plus_the_familys_sections():
  from gen_jax import schema
  assert "gan" not in config_lib.default_config("vae") and config_lib.to_dict(
      config_lib.default_config("vae")) == config_lib.to_dict(schema.base())
  gan, vaegan = config_lib.default_config("gan"), config_lib.default_config("vaegan")
  assert {"gan", "d_optimizer"} <= set(gan) and "vaegan" not in gan
  assert {"gan", "d_optimizer", "vaegan"} <= set(vaegan) and vaegan.model.family == "vaegan"
  with pytest.raises(ConfigError, match="config.model.family='nope'"):
    config_lib.default_config("nope")
