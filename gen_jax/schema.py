"""The config schema: every key any part of gen_jax reads, with its default.

Experiment files (configs/*.py) start from `base()` (or `for_family(name)`, which adds the sections a model family
needs, from the family's `add_defaults`) and override. Because every field is defined here, a typo in a
command-line override (`--config.train.num_step=...`) is an error that names the key instead of being silently
ignored. '' and 0 mean "not set" where noted.
"""
from __future__ import annotations

import ml_collections

# eval.imputation_chain (gen_jax/eval/groups/imputation.py)
IMPUTATION_CHAINS = ("mwg", "pseudo_gibbs", "pcn")


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "binarized_mnist"   # mnist | fashion_mnist | binarized_mnist | image_folder | npz
  c.data.data_dir = ""              # folder holding mnist/ and fashion_mnist/ raw files; '' = search (README)
  c.data.tfds_dir = ""              # where prepared TFDS files go; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.path = ""                  # image_folder / npz: the folder or .npz file
  c.data.binarization = "dynamic"   # binarized_mnist: dynamic (fresh draw per batch) | fixed
  c.data.batch_size = 100           # global batch, split over all devices
  c.data.test_fraction = 0.1        # image_folder / npz without a test split
  c.data.num_train = 0              # keep only the first N training examples; 0 = all
  c.data.num_test = 0               # likewise for the test split
  c.data.seed = 0                   # fixed binarization draw and image-folder hold-out split
  c.data.classes = ()               # keep only these classes in the TRAIN split (one-class anomaly protocol);
                                    # the test split stays whole; () = all classes

  c.model = ml_collections.ConfigDict()
  c.model.family = "vae"
  c.model.arch = "mlp"              # mlp | conv
  c.model.hidden = (200, 200)       # mlp hidden widths (Burda et al. 2015)
  c.model.features = (32, 64)       # conv widths, one stride-2 stage each
  c.model.latent_dim = 50
  c.model.activation = "tanh"
  c.model.upsample = "nearest"     # conv decoder: nearest | pixel_shuffle | transpose (measured: NOTES.md)
  c.model.likelihood = "bernoulli"  # bernoulli | gaussian | gaussian_fixed | logistic
  c.model.gaussian_sigma = 0.1      # gaussian_fixed only
  c.model.conditional = False       # class label into encoder and decoder (conditional VAE)

  c.objective = ml_collections.ConfigDict()
  c.objective.name = "elbo"         # elbo | iwae
  c.objective.num_samples = 1       # k: Monte Carlo samples (elbo) or importance samples (iwae)
  c.objective.beta = 1.0            # KL weight (beta-VAE)
  c.objective.kl_warmup_steps = 0   # linear KL warm-up from 0 to beta
  c.objective.free_bits = 0.0       # nats per latent dimension (Kingma et al. 2016)
  c.objective.gradient = "reparam"  # reparam | dreg (iwae only: doubly reparameterized, Tucker et al. 2019)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "constant"  # constant | linear | cosine | warmup_cosine | constant_cosine | exponential |
                                     # burda
  c.optimizer.warmup_steps = 0
  c.optimizer.decay_steps = 1000     # exponential
  c.optimizer.decay_rate = 0.5       # exponential
  c.optimizer.decay_fraction = 0.3   # constant_cosine: closing part of the run that decays
  c.optimizer.final_lr_fraction = 0.0  # linear, cosine, warmup_cosine, constant_cosine: last lr / first lr
  c.optimizer.stage_steps = 0        # burda: steps per unit of the 3^i stages (steps per epoch = the paper's
                                     # schedule); 0 = stages scaled to train.num_steps
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.momentum = 0.0         # sgd
  c.optimizer.weight_decay = 0.0
  c.optimizer.grad_clip_norm = 0.0   # 0 = off

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 20_000
  c.train.schedule_steps = 0        # steps the learning-rate schedules span; 0 = train.num_steps (set it to
                                     # the old num_steps to extend a finished run on its original schedule)
  c.train.log_every = 100
  c.train.checkpoint_every = 5_000
  c.train.keep_checkpoints = 3
  c.train.sample_every = 5_000       # PNG grids of samples / reconstructions / interpolations; 0 = only at the end
  c.train.ema_decay = 0.0            # EMA of parameters for sampling and evaluation; 0 = off
  c.train.eval_every = 5_000         # sample quality during training (eval/training_eval.py): Frechet distance
                                     # in classifier features, or mode counts; logged with split 'eval'; 0 = off
  c.train.eval_samples = 2000        # samples per evaluation during training
  c.train.steps_per_dispatch = 1     # update steps per jitted call (lax.scan): hides Python/dispatch overhead
  c.train.compute_dtype = "float32"  # float32 | bfloat16 (mixed precision: bf16 compute, f32 weights and loss)
  c.train.cpu_conv_kernels = "xla"   # xla | ynnpack: XLA:CPU convolution kernels (cpu_kernels.py); CPU only

  c.eval = ml_collections.ConfigDict()
  c.eval.split = "test"
  c.eval.num_examples = 0            # 0 = the whole split
  c.eval.batch_size = 500
  c.eval.num_devices = 0             # local devices sharing each batch; 0 = all on GPU/TPU, 1 on CPU (gen_jax/eval/placement.py)
  c.eval.num_importance_samples = 5000   # k of the NLL estimate (Burda et al.); 0 = skip
  c.eval.chunk_size = 100            # importance samples per chunk: bounds memory for any k
  # The evaluation suite (gen_jax/eval/suite.py). Groups that do not apply to a model are skipped.
  c.eval.suites = ("likelihood", "samples", "modes", "latent", "imputation", "cas")
  c.eval.num_samples = 10_000        # generated samples for sample-quality metrics
  c.eval.reference_split = "test"    # real reference set; the real-data floor compares it with 'train'
  c.eval.subset_seed = 0             # seed of every class-balanced subset of a split (gen_jax/data/subsets.py)
  c.eval.feature_net = ""            # classifier checkpoint folder; '' = classifiers/<dataset> in the repo
  c.eval.inception_weights = ""      # pytorch-fid's pt_inception-2015-12-05-6726825d.pth; '' = $GEN_JAX_INCEPTION_WEIGHTS
  c.eval.kid_subsets = 100           # KID: number of random subsets ...
  c.eval.kid_subset_size = 1000      # ... and their size (Binkowski et al. 2018)
  c.eval.pr_k = 3                    # k of improved precision/recall (Kynkaanniemi et al. 2019)
  c.eval.dc_k = 5                    # k of density/coverage (Naeem et al. 2020)
  c.eval.ppl_samples = 2000          # perceptual path length: interpolation pairs ...
  c.eval.ppl_epsilon = 1e-4          # ... and step
  c.eval.imputation_examples = 200   # test images masked per mask kind
  c.eval.imputation_steps = 50       # iterations of conditional sampling / latent optimization
  c.eval.imputation_samples = 8      # M imputations per image (chains / restarts), scored singly and as their mean
  c.eval.imputation_chain = "mwg"    # conditional sampling: mwg (Metropolis-within-Gibbs) | pseudo_gibbs | pcn
  c.eval.cas_samples = 10_000        # classification accuracy score: generated training examples
  c.eval.cas_real_subset = 1000      # augmentation: size of the small real training subset
  c.eval.cas_steps = 1000            # training steps of each CAS / augmentation classifier (batch 128)
  return c


def optimizer(lr: float, b1: float = 0.5, b2: float = 0.999, name: str = "adam") -> ml_collections.ConfigDict:
  """An optimizer section (same fields as c.optimizer)."""
  o = base().optimizer
  o.name, o.learning_rate, o.b1, o.b2 = name, lr, b1, b2
  return o


def for_family(family: str) -> ml_collections.ConfigDict:
  """`base()` plus the sections model family `family` adds (its `add_defaults`: gan.*, d_optimizer.*, vaegan.*)."""
  from gen_jax.models import registry  # noqa: PLC0415 (the family modules import jax; keep this module light)
  return registry.family_class(family).add_defaults(base())


def apply_variant(c: ml_collections.ConfigDict, variant: str | None) -> ml_collections.ConfigDict:
  """Shared variant tokens: 'runlocal' shrinks everything so a laptop finishes in seconds."""
  for token in (variant or "").split(","):
    token = token.strip()
    if token == "runlocal":
      c.data.num_train = 1000
      c.data.num_test = 200
      c.data.batch_size = 40
      c.train.num_steps = 50
      c.train.log_every = 10
      c.train.checkpoint_every = 25
      c.train.sample_every = 50
      c.train.eval_every, c.train.eval_samples = 50, 200
      c.eval.num_importance_samples = 50
      c.eval.batch_size = 100
      c.eval.num_samples = 200          # = data.num_test: the reference set holds 200 test images
      c.eval.kid_subsets, c.eval.kid_subset_size = 10, 100
      c.eval.ppl_samples = 100
      c.eval.imputation_examples, c.eval.imputation_steps, c.eval.imputation_samples = 50, 20, 2
      c.eval.cas_samples, c.eval.cas_real_subset, c.eval.cas_steps = 500, 100, 100
      for key in ("g_width", "d_width"):   # GAN / VAE-GAN networks (the SN-ResNet's 128 took minutes for 50 steps)
        if key in c.model:
          c.model[key] = min(int(c.model[key]), 32)
  return c
