"""VAE objectives: KL warm-up, free bits, the sign of the reported KL, and the IWAE >= ELBO ordering."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError
from gen_jax.objectives import distributions as D
from gen_jax.objectives.likelihoods import make_likelihood
from gen_jax.objectives.vae import kl_weight, log_importance_weights_from_posterior, vae_loss


from linear_gaussian import LinearGaussian


# ---------------------------------------------------------------- KL weight


def test_kl_weight_schedule():
  assert float(kl_weight(0, 2.0, 100)) == 0.0
  assert float(kl_weight(25, 2.0, 100)) == pytest.approx(0.5)
  assert float(kl_weight(100, 2.0, 100)) == pytest.approx(2.0)
  assert float(kl_weight(10_000, 2.0, 100)) == pytest.approx(2.0)
  assert float(kl_weight(0, 0.5, 0)) == pytest.approx(0.5)
  traced = jax.jit(lambda s: kl_weight(s, 1.0, 1000))
  np.testing.assert_allclose([traced(jnp.int32(s)) for s in (0, 500, 999, 1000, 5000)], [0, 0.5, 0.999, 1, 1],
                             rtol=1e-6)


# ---------------------------------------------------------------- ELBO


def _small_model_and_data(mean_shift=0.4, logvar_shift=0.6, n=32):
  model = LinearGaussian(mean_shift=mean_shift, logvar_shift=logvar_shift)
  return model, jnp.asarray(model.sample_x(n))


def test_elbo_metrics_are_consistent_and_kl_positive():
  model, x = _small_model_and_data()
  loss, m = jax.jit(lambda x, key: vae_loss(model.encode_fn, model.decode_fn, model.likelihood, x, None, key,
                                            step=0, num_samples=3))(x, jax.random.key(0))
  assert all(np.isfinite(float(v)) for v in m.values())
  mean, logvar = model.encode_fn(x, None)
  kl = np.asarray(D.gaussian_kl_to_standard(mean, logvar)).sum(-1).mean()
  assert float(m["kl"]) > 0
  np.testing.assert_allclose(m["kl"], kl, rtol=1e-5)
  np.testing.assert_allclose(m["elbo"], m["recon_log_prob"] - m["kl"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(m["loss"], -m["elbo"], rtol=1e-5)  # beta = 1, no warm-up, no free bits
  np.testing.assert_allclose(loss, m["loss"])
  np.testing.assert_allclose(m["bits_per_dim"], -m["elbo"] / (4 * math.log(2)), rtol=1e-5)
  assert float(m["kl_weight"]) == 1.0
  assert float(m["elbo"]) < float(np.mean(model.log_marginal(x)))  # a bound, and q is not the posterior


def test_beta_and_warmup_scale_only_the_kl_term():
  model, x = _small_model_and_data()
  run = functools.partial(vae_loss, model.encode_fn, model.decode_fn, model.likelihood, x, None, jax.random.key(1))

  @jax.jit
  def all_runs(step):
    return run(step=0), run(step=step, beta=4.0, kl_warmup_steps=120), run(step=0, beta=4.0, kl_warmup_steps=120)

  (_, base), (loss, m), (loss0, m0) = all_runs(jnp.int32(30))
  np.testing.assert_allclose(m["kl_weight"], 1.0)
  np.testing.assert_allclose(loss, -base["recon_log_prob"] + 1.0 * base["kl"], rtol=1e-5)
  np.testing.assert_allclose(m["kl"], base["kl"])
  np.testing.assert_allclose(loss0, -base["recon_log_prob"], rtol=1e-6)
  assert float(m0["kl_weight"]) == 0.0 and float(m0["kl"]) > 0


def test_free_bits_changes_the_loss_not_the_reported_kl():
  model, x = _small_model_and_data(mean_shift=0.0, logvar_shift=0.0)
  mean, logvar = model.encode_fn(x, None)
  kl_per_dim = np.asarray(D.gaussian_kl_to_standard(mean, logvar)).mean(0)  # [L]
  lam = float(np.mean(kl_per_dim))  # above one latent's KL, below the other's
  assert kl_per_dim.min() < lam < kl_per_dim.max()
  run = functools.partial(vae_loss, model.encode_fn, model.decode_fn, model.likelihood, x, None, jax.random.key(2),
                          step=0, beta=0.5)

  def shifted_loss(shift, free_bits, beta):
    def encode_fn(x, y):
      mean, logvar = model.encode_fn(x, y)
      return mean + shift, logvar
    return vae_loss(encode_fn, model.decode_fn, model.likelihood, x, None, jax.random.key(2), step=0, beta=beta,
                    free_bits=free_bits)[0]

  @jax.jit
  def everything():
    grad_fb = jax.grad(shifted_loss)(jnp.zeros(2), lam, 0.5)
    grad_recon = jax.grad(shifted_loss)(jnp.zeros(2), 0.0, 0.0)
    return run(), run(free_bits=lam), grad_fb, grad_recon

  (loss, m), (loss_fb, m_fb), grad_fb, grad_recon = everything()
  assert float(loss_fb) > float(loss)
  np.testing.assert_allclose(m_fb["kl"], m["kl"])
  np.testing.assert_allclose(m_fb["elbo"], m["elbo"])
  expected = -m["recon_log_prob"] + 0.5 * np.sum(np.maximum(lam, kl_per_dim))
  np.testing.assert_allclose(loss_fb, expected, rtol=1e-5)
  # The floor removes the KL gradient of the latent below lambda and keeps that of the one above.
  low, high = int(np.argmin(kl_per_dim)), int(np.argmax(kl_per_dim))
  np.testing.assert_allclose(grad_fb[low], grad_recon[low], rtol=1e-5, atol=1e-6)
  # d/dshift_j of mean_b KL_bj = mean_b mean_bj.
  np.testing.assert_allclose(grad_fb[high] - grad_recon[high], 0.5 * np.mean(np.asarray(mean)[:, high]),
                             rtol=1e-4, atol=1e-6)


def test_vae_loss_jits_with_traced_step_and_a_discrete_likelihood():
  """A tiny Bernoulli VAE with labels: jittable, finite metrics, finite gradients, positive KL."""
  lik = make_likelihood("bernoulli")
  rng = np.random.default_rng(0)
  x = jnp.asarray((rng.uniform(size=(6, 4, 4, 1)) > 0.5).astype(np.float32))
  y = jnp.asarray(rng.integers(0, 3, 6), jnp.int32)
  params = {"enc": jnp.asarray(rng.standard_normal((16, 4)) * 0.3, jnp.float32),
            "dec": jnp.asarray(rng.standard_normal((2, 16)) * 0.3, jnp.float32),
            "emb": jnp.asarray(rng.standard_normal((3, 16)), jnp.float32)}

  def loss_fn(params, x, y, key, step, objective):
    def encode_fn(x, y):
      h = x.reshape(x.shape[0], -1) @ params["enc"]
      return h[:, :2], h[:, 2:]

    def decode_fn(z, y):
      return (z @ params["dec"] + params["emb"][y]).reshape(z.shape[0], 4, 4, 1)

    return vae_loss(encode_fn, decode_fn, lik, x, y, key, step=step, objective=objective, num_samples=3,
                    **({"beta": 2.0, "kl_warmup_steps": 10, "free_bits": 0.05} if objective == "elbo" else {}))

  for objective in ("elbo", "iwae"):
    step_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True), static_argnames="objective")
    (loss, metrics), grads = step_fn(params, x, y, jax.random.key(0), jnp.int32(5), objective=objective)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(metrics["kl"]) >= 0
    assert float(metrics["recon_log_prob"]) <= 0
    if objective == "iwae":
      assert {"iwae_bound", "bits_per_dim"} <= set(metrics)
      np.testing.assert_allclose(metrics["bits_per_dim"], -metrics["iwae_bound"] / (16 * math.log(2)), rtol=1e-5)
    else:
      np.testing.assert_allclose(metrics["kl_weight"], 1.0)  # 2.0 * 5 / 10


def test_samples_are_decoded_in_one_call_with_tiled_labels():
  """log w from the batched call equals a per-sample loop (labels must follow their examples)."""
  model = LinearGaussian()
  x = jnp.asarray(model.sample_x(3))
  y = jnp.array([0, 1, 2])
  calls = []

  def decode_fn(z, y):
    calls.append(z.shape[0])
    return model.decode_fn(z, None) + 0.1 * y[:, None, None, None].astype(jnp.float32)

  @jax.jit
  def batched_and_looped(x, y, key):
    mean, logvar = model.encode_fn(x, y)
    batched = log_importance_weights_from_posterior(decode_fn, model.likelihood, x, y, mean, logvar, key, 5)
    z = D.reparameterize(key, mean, logvar, 5)
    looped = []
    for k in range(5):
      out = model.decode_fn(z[k], None) + 0.1 * y[:, None, None, None].astype(jnp.float32)
      looped.append(model.likelihood.log_prob(x, out) + D.standard_normal_log_prob(z[k]).sum(-1)
                    - D.gaussian_log_prob(z[k], mean, logvar).sum(-1))
    return batched, jnp.stack(looped)

  (log_w, log_px_z), expected = batched_and_looped(x, y, jax.random.key(3))
  assert calls == [15] and log_w.shape == (5, 3) and log_px_z.shape == (5, 3)
  np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- IWAE


def test_iwae_bound_is_above_elbo_and_non_decreasing_in_k():
  model, x = _small_model_and_data(mean_shift=0.5, logvar_shift=0.8, n=64)
  keys = jax.random.split(jax.random.key(4), 48)

  ks = (1, 4, 16, 64)

  @jax.jit
  def all_bounds(keys):  # one compilation for every bound
    def metrics(key, objective, k):
      return vae_loss(model.encode_fn, model.decode_fn, model.likelihood, x, None, key, step=0,
                      objective=objective, num_samples=k)[1]
    out = {"elbo": jax.vmap(lambda key: metrics(key, "elbo", 1)["elbo"])(keys)}
    for k in ks:
      out[f"iwae{k}"] = jax.vmap(lambda key: metrics(key, "iwae", k)["iwae_bound"])(keys)
    return out

  values = {name: np.asarray(v, np.float64) for name, v in all_bounds(keys).items()}
  stat = lambda v: (v.mean(), v.std() / math.sqrt(len(v)))
  elbo, elbo_se = stat(values["elbo"])
  iwae = {k: stat(values[f"iwae{k}"]) for k in ks}
  log_px = float(np.mean(model.log_marginal(x)))
  # k = 1: the same expectation as the ELBO.
  assert abs(iwae[1][0] - elbo) < 4 * math.hypot(iwae[1][1], elbo_se)
  for k_lo, k_hi in zip(ks, ks[1:]):
    (lo, lo_se), (hi, hi_se) = iwae[k_lo], iwae[k_hi]
    assert hi > lo - 3 * math.hypot(lo_se, hi_se), (k_lo, k_hi, lo, hi)
  assert iwae[64][0] > elbo + 5 * math.hypot(iwae[64][1], elbo_se)  # a strict improvement with a poor q
  assert iwae[64][0] < log_px + 3 * iwae[64][1]
  assert log_px - iwae[64][0] < log_px - elbo


@pytest.mark.parametrize("overrides,pattern", [
  (["objective.name=iwae", "objective.beta=0.5"], r"config\.objective\.beta has no meaning for the IWAE"),
  (["objective.name=iwae", "objective.kl_warmup_steps=10"], r"config\.objective\.kl_warmup_steps has no meaning"),
  (["objective.name=iwae", "objective.free_bits=0.1"], r"config\.objective\.free_bits has no meaning"),
  (["objective.name=vi"], r"config\.objective\.name='vi' is not valid; choose one of elbo, iwae"),
  (["objective.num_samples=0"], r"config\.objective\.num_samples must be > 0"),
  (["objective.free_bits=-1.0"], r"config\.objective\.free_bits must be >= 0"),
  (["objective.kl_warmup_steps=-1"], r"config\.objective\.kl_warmup_steps must be >= 0"),
])
def test_iwae_rejects_kl_reweighting_and_unknown_objectives(overrides, pattern):
  """Checked once, at start-up (config.validate_config); vae_loss trusts a validated config."""
  c = config_lib.default_config("vae")
  config_lib.apply_overrides(c, overrides)
  with pytest.raises(ConfigError, match=pattern):
    config_lib.validate_config(c)
