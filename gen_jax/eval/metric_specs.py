"""The table of metrics gen_jax reports: group, label, unit, which direction is better, format, meaning.

One place that says what every flat metric name in `<workdir>/eval/metrics.json` (and the anomaly means of
`anomaly/anomaly.json`) means, so the comparison report (gen_jax/report/build.py), the README and the docs
agree. A metric's "floor" is the same metric for real test data against real training data: the value a perfect
model would get with this sample count and feature network; it is printed next to the model's value, never
ranked. `_std` twins are printed as "value ± std".

Unknown names are not dropped: `group_of` guesses their group from a known prefix, else "other".
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

# How the NLL baseline's protocol line begins for a conditional model (fitted per class; written by the likelihood
# group, read by the console summary and the backfill job).
NLL_BASELINE_PER_CLASS = "every pixel on its own given the class"

HIGHER, LOWER, NEITHER = "higher", "lower", "neither"

# Section order of the report, with titles.
GROUPS: dict[str, str] = {
    "likelihood": "Likelihood and reconstruction",
    "samples": "Sample quality",
    "modes": "Mode coverage",
    "latent": "Latent space smoothness",
    "imputation": "Imputation (inpainting)",
    "cas": "Classification accuracy score",
    "anomaly": "Anomaly detection",
    "other": "Other",
}


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  """How to read and print one metric.

  direction: HIGHER or LOWER is better, or NEITHER (not ranked). `target`: when set, the closer to it the
  better (e.g. a diversity ratio of 1), and `direction` is NEITHER. `floor`/`std`/`reference`: names of the
  twin metrics printed inside this metric's cell. `derived`: another metric restated (the report's summary
  leaves it out so one result is not counted twice).
  """
  name: str
  group: str
  label: str
  unit: str
  direction: str
  fmt: str
  meaning: str
  floor: str | None = None
  std: str | None = None
  reference: str | None = None      # a real-data value that is not a floor (e.g. the classifier score of real data)
  reference_label: str = "real"
  target: float | None = None
  derived: bool = False             # a restatement of another metric (bits/dim, a gap): ranked, but not counted twice

  @property
  def arrow(self) -> str:
    if self.target is not None:
      return f"→{self.target:g}"
    return {HIGHER: "↑", LOWER: "↓"}.get(self.direction, "")

  @property
  def ranked(self) -> bool:
    return self.direction in (HIGHER, LOWER) or self.target is not None


def _s(name: str, group: str, label: str, unit: str, direction: str, fmt: str, meaning: str, **kw) -> MetricSpec:
  return MetricSpec(name, group, label, unit, direction, fmt, meaning, **kw)


def _imputation_specs() -> list[MetricSpec]:
  out = []
  for mask, what in (("half", "the bottom half"), ("centre", "a centre square"), ("random", "random pixels")):
    out += [
        _s(f"impute_mse_{mask}", "imputation", f"Imputation MSE, {mask} mask", "pixels in [0,1]", LOWER, ".4f",
           f"mean squared error on the masked pixels after filling {what} with the mean of the model's M "
           "imputations (conditional sampling for encoder models, latent optimization restarts otherwise)"),
        _s(f"impute_mse_{mask}_persample", "imputation", f"Imputation MSE, {mask} mask, one imputation",
           "pixels in [0,1]", LOWER, ".4f",
           f"as impute_mse_{mask}, the mean error of a single imputation (it includes the imputations' variance)",
           derived=True),
        _s(f"impute_mse_{mask}_bestfit", "imputation", f"Imputation MSE, {mask} mask, best-fitting restart",
           "pixels in [0,1]", LOWER, ".4f",
           f"as impute_mse_{mask}, the latent-optimization restart that fits the visible pixels best",
           derived=True),
        _s(f"impute_mse_{mask}_latentopt", "imputation", f"Imputation MSE, {mask} mask, latent optimization",
           "pixels in [0,1]", LOWER, ".4f",
           f"as impute_mse_{mask}, filling by optimizing z to match the visible pixels (mean of the restarts)"),
        _s(f"impute_mse_{mask}_meanfill", "imputation", f"Imputation MSE, {mask} mask, mean fill (baseline)",
           "pixels in [0,1]", NEITHER, ".4f",
           f"as impute_mse_{mask}, filling with the training-set mean image: no model; the baseline a model "
           "must beat (not ranked)"),
        _s(f"impute_accept_{mask}", "imputation", f"Conditional sampling, {mask} mask, acceptance rate", "fraction",
           NEITHER, ".3f",
           "fraction of Metropolis-within-Gibbs proposals accepted (encoder models; near 0: the chains barely move "
           "from their latent-optimization starts, so the imputation is mostly latent optimization's) (not ranked)"),
    ]
  return out


def _ppl_specs() -> list[MetricSpec]:
  out = []
  for name, what in (("ppl_prior_slerp", "spherical interpolations between prior draws"),
                     ("ppl_prior_lerp", "linear interpolations between prior draws"),
                     ("ppl_encoding_lerp", "linear interpolations between encodings of test images")):
    label = "PPL, " + name.removeprefix("ppl_").replace("_", ", ")
    out += [
        _s(name, "latent", label, "", LOWER, ".2f",
           f"perceptual path length (Karras et al. 2019) in the classifier's features along {what}; plain mean",
           std=f"{name}_std"),
        _s(f"{name}_filtered", "latent", label + " (1-99% filtered)", "", LOWER, ".2f",
           f"as {name}, mean within the 1st-99th percentiles of the path lengths (StyleGAN's number)", derived=True),
    ]
  return out


SPECS: tuple[MetricSpec, ...] = (
    # ------------------------------------------------------------------ likelihood
    _s("nll", "likelihood", "Test NLL", "nats", LOWER, ".2f",
       "negative log-likelihood per example, importance-sampled estimate (Burda et al. 2015)"),
    _s("nll_bits_per_dim", "likelihood", "Test NLL", "bits/dim", LOWER, ".4f", "nll / (num_pixels * ln 2)",
       derived=True),
    _s("nll_independent", "likelihood", "Test NLL, independent pixels (baseline)", "nats", NEITHER, ".2f",
       "-log p(x) when every pixel is modelled on its own by its training histogram (add-one smoothed; for a "
       "conditional model, -log p(x|y) with histograms per class): no model; the baseline a likelihood model must "
       "beat (not ranked)"),
    _s("nll_bits_per_dim_independent", "likelihood", "Test NLL, independent pixels (baseline)", "bits/dim", NEITHER,
       ".4f", "nll_independent / (num_pixels * ln 2) (not ranked)", derived=True),
    _s("elbo", "likelihood", "ELBO", "nats", HIGHER, ".2f", "evidence lower bound per example: recon_log_prob - kl"),
    _s("elbo_bits_per_dim", "likelihood", "-ELBO", "bits/dim", LOWER, ".4f", "-elbo / (num_pixels * ln 2)",
       derived=True),
    _s("recon_log_prob", "likelihood", "Reconstruction log-likelihood", "nats", HIGHER, ".2f",
       "E_q(z|x) log p(x|z), one posterior sample per example"),
    _s("kl", "likelihood", "KL(q(z|x) || p(z))", "nats", NEITHER, ".2f",
       "rate: information the code carries about x; neither large nor small is better by itself"),
    _s("recon_mse", "likelihood", "Reconstruction MSE", "pixels in [0,1]", LOWER, ".4f",
       "per-pixel squared error of Dec(mean of q(z|x)) against x, pixels in [0, 1]"),
    _s("active_units", "likelihood", "Active latent units", "count", NEITHER, "d",
       "latent dimensions with Cov_x(E_q[z_i]) > 0.01 (Burda et al. 2015); few means posterior collapse"),
    _s("num_latents", "likelihood", "Latent dimensions", "count", NEITHER, "d", "size of z"),
    _s("num_examples", "likelihood", "Examples evaluated", "count", NEITHER, "d", "test examples in the estimate"),
    _s("num_importance_samples", "likelihood", "Importance samples k", "count", NEITHER, "d",
       "samples of the NLL estimate per example"),
    # ------------------------------------------------------------------ samples
    _s("fd_classifier", "samples", "Fréchet distance (classifier features)", "", LOWER, ".3f",
       "Fréchet distance between Gaussians fitted to features of samples and real data, in a classifier trained "
       "on this dataset (TF-GAN's 'MNIST Fréchet distance')", floor="fd_classifier_floor"),
    _s("fid_inception", "samples", "FID (Inception)", "", LOWER, ".2f",
       "Fréchet Inception distance (Heusel et al. 2017), pytorch-fid Inception weights",
       floor="fid_inception_floor"),
    _s("kid", "samples", "KID (classifier features)", "", LOWER, ".4f",
       "kernel inception distance (Binkowski et al. 2018): unbiased MMD^2, cubic kernel, mean over subsets",
       floor="kid_floor", std="kid_std"),
    _s("classifier_score", "samples", "Classifier score", "", HIGHER, ".3f",
       "inception-score analogue with the dataset's classifier: exp E[KL(p(y|x) || p(y))]",
       std="classifier_score_std", reference="classifier_score_real"),
    _s("precision", "samples", "Precision", "fraction", HIGHER, ".3f",
       "fraction of samples inside the k-NN manifold of real data (Kynkäänniemi et al. 2019)",
       floor="precision_floor"),
    _s("recall", "samples", "Recall", "fraction", HIGHER, ".3f",
       "fraction of real data inside the k-NN manifold of samples (Kynkäänniemi et al. 2019)", floor="recall_floor"),
    _s("density", "samples", "Density", "", NEITHER, ".3f",
       "mean count of real k-NN balls holding each sample / k (Naeem et al. 2020); 1 when samples match the data",
       floor="density_floor", target=1.0),
    _s("coverage", "samples", "Coverage", "fraction", HIGHER, ".3f",
       "fraction of real k-NN balls that hold at least one sample (Naeem et al. 2020)", floor="coverage_floor"),
    _s("sample_diversity", "samples", "Sample diversity ratio", "ratio", NEITHER, ".3f",
       "mean pairwise L2 distance of samples / the same for real images; 1 when as diverse as the data",
       target=1.0),
    # ------------------------------------------------------------------ modes
    _s("modes_covered", "modes", "Modes covered", "count", HIGHER, "d",
       "mixture modes with enough high-quality samples near them; Stacked MNIST: modes with >= 1 sample (floor: as "
       "many real test-split triples)",
       floor="modes_covered_floor"),
    _s("num_modes", "modes", "Modes in the data", "count", NEITHER, "d", "number of modes of the true distribution"),
    _s("high_quality_fraction", "modes", "High-quality samples", "fraction", HIGHER, ".3f",
       "fraction of samples close to some mode"),
    _s("kl_to_uniform", "modes", "KL(mode histogram || uniform)", "nats", LOWER, ".3f",
       "how unevenly the high-quality samples spread over the modes; 0 = perfectly even", floor="kl_to_uniform_floor"),
    # ------------------------------------------------------------------ latent
    *_ppl_specs(),
    # ------------------------------------------------------------------ imputation
    *_imputation_specs(),
    # ------------------------------------------------------------------ cas
    _s("cas_accuracy", "cas", "CAS accuracy", "fraction", HIGHER, ".4f",
       "test accuracy of a classifier trained only on generated labelled samples (Ravuri & Vinyals 2019)"),
    _s("real_subset_accuracy", "cas", "Real-subset accuracy (baseline)", "fraction", NEITHER, ".4f",
       "test accuracy of the same classifier trained on the small real subset alone: the augmentation baseline"),
    _s("real_subset_plus_generated_accuracy", "cas", "Real subset + generated accuracy", "fraction", HIGHER, ".4f",
       "test accuracy when the small real subset is augmented with the generated samples"),
    _s("augmented_accuracy", "cas", "Augmented accuracy", "fraction", HIGHER, ".4f",
       "test accuracy when the small real subset is augmented with generated samples"),
    _s("augmentation_gain", "cas", "Augmentation gain", "accuracy points", HIGHER, ".4f",
       "real_subset_plus_generated_accuracy - real_subset_accuracy: what the generated samples add", derived=True),
    _s("cas_gap_to_real_subset", "cas", "CAS gap to real subset", "accuracy points", LOWER, ".4f",
       "real_subset_accuracy - cas_accuracy: how far training on samples alone falls short of the real subset",
       derived=True),
    _s("full_real_accuracy", "cas", "Full real-data accuracy (reference)", "fraction", NEITHER, ".4f",
       "test accuracy of the same recipe trained on the whole real training split: the ceiling"),
)

_BY_NAME = {s.name: s for s in SPECS}
# Names that are printed inside another metric's cell, mapped to that metric.
TWINS: dict[str, str] = {t: s.name for s in SPECS for t in (s.floor, s.std, s.reference) if t}
_PREFIX_GROUPS = (("anomaly_", "anomaly"), ("impute_", "imputation"), ("ppl_", "latent"), ("cas_", "cas"),
                  ("fd_", "samples"), ("fid_", "samples"), ("kid", "samples"), ("mode", "modes"),
                  ("nll", "likelihood"), ("elbo", "likelihood"), ("recon_", "likelihood"))


def anomaly_spec(name: str) -> MetricSpec:
  """`anomaly_auroc_<score>`: mean over classes of the AUROC of one anomaly score."""
  score = name.removeprefix("anomaly_auroc_")
  return MetricSpec(name, "anomaly", f"Anomaly AUROC, {score}", "AUROC", HIGHER, ".4f",
                    f"area under the ROC curve of the '{score}' anomaly score, mean over held-out classes")


def get(name: str) -> MetricSpec | None:
  """The spec of a known metric (anomaly means included), else None."""
  if name in _BY_NAME:
    return _BY_NAME[name]
  if name.startswith("anomaly_auroc_"):
    return anomaly_spec(name)
  return None


def group_of(name: str) -> str:
  spec = get(name)
  if spec is not None:
    return spec.group
  if name in TWINS:
    return _BY_NAME[TWINS[name]].group
  for prefix, group in _PREFIX_GROUPS:
    if name.startswith(prefix):
      return group
  return "other"


def spec_or_unknown(name: str) -> MetricSpec:
  """The known spec, or a neutral one for a name this table does not know (shown, never ranked)."""
  return get(name) or MetricSpec(name, group_of(name), name, "", NEITHER, ".4g", "not described in metric_specs")


def as_number(value) -> float | None:
  """A metric value as a float; None for missing or non-numeric values. NaN/Inf come back as floats."""
  if value is None or isinstance(value, bool):
    return None
  if isinstance(value, (int, float)):
    return float(value)
  if isinstance(value, str):
    try:
      return float(value)  # metrics_log writes NaN/Inf as the strings 'nan', 'inf'
    except ValueError:
      return None
  return None


def format_value(name: str, value) -> str:
  """A value as the report prints it: the spec's format; non-finite values as 'nan'/'inf'; None as '—'."""
  if value is None:
    return "—"
  x = as_number(value)
  if x is None:
    return str(value)
  if not math.isfinite(x):
    return str(x)
  fmt = spec_or_unknown(name).fmt
  if fmt == "d":
    return str(int(round(x))) if float(x).is_integer() else f"{x:.4g}"
  return format(x, fmt)


def best_runs(name: str, values: Sequence[float | None]) -> list[int]:
  """Indices of the best finite values among `values` (ties all count); [] when the metric is not ranked,
  fewer than two values are finite, or all finite values are equal (nothing to choose between)."""
  spec = spec_or_unknown(name)
  finite = [(i, x) for i, x in enumerate(values) if x is not None and math.isfinite(x)]
  if not spec.ranked or len(finite) < 2 or len({x for _, x in finite}) == 1:
    return []
  if spec.target is not None:
    key = {i: abs(x - spec.target) for i, x in finite}
    best = min(key.values())
    return [i for i in key if key[i] == best]
  best = (max if spec.direction == HIGHER else min)(x for _, x in finite)
  return [i for i, x in finite if x == best]


def ordered_names(names: Iterable[str]) -> list[tuple[str, list[str]]]:
  """Groups `names` into report sections: known metrics in table order, then unknown ones of that group
  (sorted), then the 'other' section. Twins (floors, stds, real references) are left out: they print inside
  their metric's cell. Only groups holding at least one name are returned."""
  names = set(names)
  out = []
  for group in GROUPS:
    known = [s.name for s in SPECS if s.group == group and s.name in names]
    extra = sorted(n for n in names - set(known) - set(TWINS) if get(n) is None and group_of(n) == group)
    dynamic = sorted(n for n in names if n not in _BY_NAME and get(n) is not None and get(n).group == group)
    # A twin whose main metric is absent is shown on its own row rather than dropped.
    orphans = sorted(t for t in names if t in TWINS and TWINS[t] not in names and group_of(t) == group)
    rows = known + dynamic + extra + orphans
    if rows:
      out.append((group, rows))
  return out
