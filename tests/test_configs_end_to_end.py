"""Every config in configs/ trains a few steps end to end; eval.py works on a run; a real MNIST run learns."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from gen_jax import parallel
from gen_jax.train import loop
from gen_jax.train.metrics_log import read_metrics

from conftest import REPO_ROOT, TINY

CONFIG_SPECS = [
    "configs/vae.py", "configs/vae.py:conv", "configs/vae.py:grey", "configs/vae.py:fashion",
    "configs/beta_vae.py", "configs/beta_vae.py:freebits", "configs/cvae.py", "configs/cvae.py:fashion",
    "configs/iwae.py:k5", "configs/iwae.py:k50",
]


def test_every_config_file_is_covered():
  files = {p.name for p in (REPO_ROOT / "configs").glob("*.py")} - {"__init__.py", "default.py"}
  covered = {spec.split(":")[0].split("/")[-1] for spec in CONFIG_SPECS}
  assert files <= covered, f"configs without an end-to-end test: {sorted(files - covered)}"


@pytest.mark.parametrize("spec", CONFIG_SPECS)
def test_config_trains_a_few_steps(spec, make_config, tmp_path):
  config = make_config(spec, *TINY, "train.num_steps=3", "train.log_every=1", "train.checkpoint_every=3")
  summary = loop.train(config, tmp_path, progress=False)
  assert summary["step"] == 3
  rows = read_metrics(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in rows] == [1, 2, 3]
  assert all(np.isfinite(r["loss"]) for r in rows)
  assert (tmp_path / "checkpoints" / "3").is_dir()
  assert list((tmp_path / "images").glob("samples_*.png"))
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_train_and_eval_command_lines(shared_data_dir, tfds_cache_dir, tmp_path):
  """The README's two commands on a shrunken config: outputs land where documented."""
  workdir = tmp_path / "vae"
  common = [f"--config.data.data_dir={shared_data_dir}", f"--config.data.tfds_dir={tfds_cache_dir}"]
  train = subprocess.run([sys.executable, "train.py", "--config=configs/vae.py:runlocal", f"--workdir={workdir}",
                          *common, "--config.train.num_steps=30"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
  assert train.returncode == 0, train.stderr[-3000:]
  for name in ("samples", "reconstructions", "interpolation_linear", "interpolation_spherical"):
    assert (workdir / "images" / f"{name}_0000030.png").exists(), name
  ev = subprocess.run([sys.executable, "eval.py", f"--workdir={workdir}", "--no_progress", *common],
                      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert ev.returncode == 0, ev.stderr[-3000:]
  report = json.loads((workdir / "eval" / "metrics.json").read_text())
  m, p = report["metrics"], report["protocol"]
  assert report["step"] == 30
  assert m["nll"] <= -m["elbo"] + 1e-3          # the IS estimate is a tighter bound than the ELBO
  assert m["kl"] >= 0 and m["nll"] > 0
  assert p["split"] == "test" and p["num_examples"] == 200 and p["num_importance_samples"] == 50
  assert p["seed"] == 0 and "dataset_source" in p
  assert (workdir / "eval" / "samples_0000030.png").exists()
  bad = subprocess.run([sys.executable, "eval.py", f"--workdir={tmp_path / 'missing'}"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_missing_data_dir_is_a_clear_error(make_config, tmp_path):
  from gen_jax.errors import DatasetError
  config = make_config("configs/vae.py", *TINY, f"data.data_dir={tmp_path / 'nowhere'}",
                       f"data.tfds_dir={tmp_path / 'tfds'}")
  with pytest.raises(DatasetError, match="nowhere"):
    loop.train(config, tmp_path / "run", progress=False)


def test_short_real_mnist_run_learns(make_config, tmp_path):
  """1000 steps of the MLP VAE on the full dynamically binarized MNIST: the ELBO improves a lot."""
  config = make_config("configs/vae.py", "train.num_steps=1000", "train.log_every=100",
                       "train.checkpoint_every=1000", "train.sample_every=0")
  # Burda's batch of 100 does not split over 8 devices; 4 of them take 25 examples each.
  loop.train(config, tmp_path, progress=False, mesh=parallel.make_mesh(jax.devices()[:4]))
  rows = read_metrics(tmp_path / "metrics.jsonl")
  first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-3:]])
  assert first > 190 and last < 165 and last < first - 40, (first, last)
