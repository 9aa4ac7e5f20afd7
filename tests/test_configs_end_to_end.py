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

from conftest import REPO_ROOT, TINY, cli_env

CONFIG_SPECS = [
    "configs/vae.py", "configs/vae.py:conv", "configs/vae.py:grey", "configs/vae.py:fashion",
    "configs/beta_vae.py", "configs/beta_vae.py:freebits", "configs/cvae.py", "configs/cvae.py:fashion",
    "configs/iwae.py:k5", "configs/iwae.py:k50,dreg",
    "configs/gan.py", "configs/gan.py:minimax", "configs/gan.py:wgan", "configs/gan.py:wgan_gp",
    "configs/gan.py:hinge", "configs/gan.py:lsgan", "configs/gan.py:r1", "configs/gan.py:resnet",
    "configs/gan.py:conditional,fashion", "configs/gan.py:stacked", "configs/gan.py:folder,conditional",
    "configs/gan_toy.py", "configs/gan_toy.py:grid,wgan_gp", "configs/gan_toy.py:minimax,hinge",
    "configs/vaegan.py", "configs/vaegan.py:conditional,fashion",
]
# Small widths keep compile times down; the architectures are the configs' own.
GAN_TINY = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")


def _colour_folder(root: pathlib.Path) -> pathlib.Path:
  """A user's image folder: 32x32 RGB PNGs, one subfolder per class."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for cls in ("cats", "dogs"):
    (root / cls).mkdir(parents=True)
    for i in range(60):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
  return root


def test_every_config_file_is_covered():
  files = {p.name for p in (REPO_ROOT / "configs").glob("*.py")} - {"__init__.py", "default.py"}
  covered = {spec.split(":")[0].split("/")[-1] for spec in CONFIG_SPECS}
  assert files <= covered, f"configs without an end-to-end test: {sorted(files - covered)}"


@pytest.mark.parametrize("spec", CONFIG_SPECS)
def test_config_trains_a_few_steps(spec, make_config, tmp_path):
  extra = GAN_TINY if ("gan" in spec and "toy" not in spec) else ()
  if "folder" in spec:
    extra += (f"data.path={_colour_folder(tmp_path / 'images_in')}", "data.test_fraction=0.25")
  config = make_config(spec, *TINY, *extra, "train.num_steps=2", "train.log_every=1", "train.checkpoint_every=2")
  if config.get("gan") and config.gan.n_critic > 2:
    # The critic steps are unrolled at trace time: 2 exercise the same loop at under half the compile time of 5.
    config = make_config(spec, *TINY, *extra, "train.num_steps=2", "train.log_every=1", "train.checkpoint_every=2",
                         "gan.n_critic=2")
  # One device: compile time dominates here, and sharding has its own tests (test_trainer: 1 vs 8 devices;
  # test_gan_training: GAN resume and VAE-GAN on 2 devices; test_multiprocess: two processes).
  summary = loop.train(config, tmp_path / "run", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  tmp_path = tmp_path / "run"
  assert summary["step"] == 2
  rows = read_metrics(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in rows] == [1, 2]
  numbers = [v for r in rows for k, v in r.items() if k not in ("step", "split")]
  assert numbers and all(np.isfinite(v) for v in numbers)
  assert (tmp_path / "checkpoints" / "2").is_dir()
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
  m, p = report["metrics"], report["protocol"]["likelihood"]
  assert report["step"] == 30
  assert m["nll"] <= -m["elbo"] + 1e-3          # the IS estimate is a tighter bound than the ELBO
  assert m["kl"] >= 0 and m["nll"] > 0
  assert p["split"] == "test" and p["num_examples"] == 200 and p["num_importance_samples"] == 50
  assert report["protocol"]["seed"] == 0 and "dataset_source" in report["protocol"]
  assert report["eval_hardware"]["eval_devices"].startswith("1 cpu device(s)") and p["batch_size"] == 100
  assert (workdir / "eval" / "samples_0000030.png").exists()
  from gen_jax.report import nll_table   # the results-table script reads what eval.py wrote today
  row = nll_table.row_for(workdir)
  assert (row["model"], row["k"], row["steps"], row["nll"]) == ("VAE", 1, 30, m["nll"])
  assert row["protocol"].startswith("test split, 200 images, k=50, ") and row["protocol"].endswith("seed 0")
  bad = subprocess.run([sys.executable, "eval.py", f"--workdir={tmp_path / 'missing'}"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_missing_data_dir_is_a_clear_error(make_config, tmp_path):
  from gen_jax.errors import DatasetError
  config = make_config("configs/vae.py", *TINY, f"data.data_dir={tmp_path / 'nowhere'}",
                       f"data.tfds_dir={tmp_path / 'tfds'}")
  with pytest.raises(DatasetError, match="nowhere"):
    loop.train(config, tmp_path / "run", progress=False)


def test_short_real_mnist_run_learns(shared_data_dir, tfds_cache_dir, tmp_path):
  """1000 steps of the MLP VAE on the full dynamically binarized MNIST: the ELBO improves a lot."""
  proc = subprocess.run([sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={tmp_path}", "--no_progress",
                         f"--config.data.data_dir={shared_data_dir}", f"--config.data.tfds_dir={tfds_cache_dir}",
                         "--config.train.num_steps=1000", "--config.train.log_every=100",
                         "--config.train.checkpoint_every=1000", "--config.train.sample_every=0",
                         "--config.train.eval_every=100", "--config.train.eval_samples=500"],
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=cli_env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-3:]])
  assert first > 190 and last < 165 and last < first - 40, (first, last)
  # ... and the sample-quality curve logged during training shows it (710 -> 327 when written).
  fd = [r["fd_classifier"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
  assert len(fd) == 10 and fd[-1] < 0.7 * fd[0], fd
