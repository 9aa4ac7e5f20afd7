"""Test set-up: 8 fake CPU devices (so multi-device code is exercised on a laptop) and data paths."""
import os
import pathlib

# Must happen before jax is imported anywhere. Tests run a few steps of many models, so compile time
# dominates: LLVM optimization level 0 compiles ~3-10x faster (XLA:CPU's threefry RNG alone takes ~2 s per
# op at the default level) and runs a few steps slower. Tests that train for thousands of steps run the
# real command lines in a subprocess with default flags (see `cli_env`).
# The user's own flags, recorded once: pytest-xdist workers inherit the controller's modified environment.
USER_XLA_FLAGS = os.environ.setdefault("GEN_JAX_TEST_USER_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
os.environ["XLA_FLAGS"] = (USER_XLA_FLAGS + " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0 --xla_cpu_opt_preset=FAST_COMPILE"
                           " --xla_cpu_use_fusion_emitters=false").strip()   # halves compile time (NOTES.md)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent XLA compilation cache per test run, shared by the pytest-xdist workers and the train.py / eval.py
# subprocesses (they inherit the environment): many tests compile the same step (a run and its resumption, the same
# config in several tests). Entries are keyed by the HLO, the XLA flags and the jaxlib version, so a hit is the same
# executable. Every compile is cached (the thresholds at 0). The directory is new for each run and removed at its
# end (`pytest_unconfigure`); a user's own JAX_COMPILATION_CACHE_DIR is left alone.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gen_jax_tests_xla_cache_")
  os.environ["GEN_JAX_TEST_CACHE_OWNER"] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The classifier-output cache (gen_jax/eval/features/cache.py) is off: tests that count classifier calls must see
# them, and nothing is written under the user's ~/.cache. tests/test_feature_cache.py turns it on in a tmp dir.
os.environ["GEN_JAX_FEATURE_CACHE"] = "off"

import pytest  # noqa: E402


def pytest_unconfigure(config):
  if os.environ.get("GEN_JAX_TEST_CACHE_OWNER") == str(os.getpid()):   # the process that made the cache
    import shutil
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """The exact original MNIST / Fashion-MNIST IDX files (../shared/data from the repo root)."""
  d = pathlib.Path(os.environ.get("GEN_JAX_DATA_DIR", SHARED_DATA))
  if not (d / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.fail(f"MNIST raw files not found under {d}; set GEN_JAX_DATA_DIR to a folder holding mnist/ and fashion_mnist/")
  return d


@pytest.fixture(scope="session")
def tfds_cache_dir(tmp_path_factory, shared_data_dir) -> pathlib.Path:
  """One prepared-TFDS directory for the whole run, shared by the pytest-xdist workers: the first to get the lock
  builds MNIST and Fashion-MNIST (seconds each), the others reuse them."""
  import fcntl

  from gen_jax.data import tfds_builders
  base = tmp_path_factory.getbasetemp()
  run_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base   # <tmp>/pytest-N in both cases
  root = run_dir / "tfds_shared"
  root.mkdir(exist_ok=True)
  with open(run_dir / "tfds_shared.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    for subdir in ("mnist", "fashion_mnist"):
      builder = tfds_builders.get_builder(subdir, root)
      if not tfds_builders.is_prepared(builder):
        tfds_builders.prepare(builder, shared_data_dir / subdir)
  return root


@pytest.fixture(scope="session")
def make_config(shared_data_dir, tfds_cache_dir):
  """make_config('configs/vae.py:conv', 'train.num_steps=3', ...) -> a validated ConfigDict on local data."""
  from gen_jax import config as config_lib

  def make(spec: str, *overrides: str):
    config = config_lib.load_config_file(str(REPO_ROOT / spec))
    config_lib.apply_overrides(config, [f"data.data_dir={shared_data_dir}", f"data.tfds_dir={tfds_cache_dir}",
                                        *overrides])
    return config_lib.validate_config(config)

  return make


TINY = ("train.eval_every=0", "data.num_train=256", "data.num_test=64", "data.batch_size=32", "train.log_every=5",
        "train.checkpoint_every=10", "train.sample_every=0", "eval.num_importance_samples=20",
        "eval.batch_size=32", "eval.chunk_size=10", "eval.num_samples=64", "eval.kid_subsets=4",
        "eval.kid_subset_size=32", "eval.ppl_samples=16", "eval.imputation_examples=16", "eval.imputation_steps=5",
        "eval.cas_samples=64", "eval.cas_real_subset=32", "eval.cas_steps=10")


def cli_env(num_devices: int = 1) -> dict:
  """Environment for a subprocess running train.py / eval.py at full XLA optimization."""
  flags = USER_XLA_FLAGS + (f" --xla_force_host_platform_device_count={num_devices}" if num_devices > 1 else "")
  return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")


def trained(config, steps: int, num_devices: int = 1):
  """(run, state): `config` set up on `num_devices` CPU devices and trained `steps` steps by the loop's own compiled
  step, for tests that need a model that has moved from its initialisation."""
  import jax
  from gen_jax import parallel
  from gen_jax.train import loop
  run = loop.setup(config, parallel.make_mesh(jax.devices()[:num_devices]))
  step = run.compile_train_step()
  state = run.init_state()
  for _ in range(steps):
    state, _ = step(state, run.data, run.keys)
  return run, state
