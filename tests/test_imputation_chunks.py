"""Latent optimization runs its Adam steps in unrolled chunks (imputation.CHUNK_STEPS per jitted call): the split
must not change the result, the remainder chunk included."""
import jax
import numpy as np

from gen_jax.eval.groups import imputation as imp

from test_eval_jobs import _linear_model_and_truth


def test_the_chunking_of_optimizer_steps_does_not_change_the_imputation(monkeypatch):
  model, x = _linear_model_and_truth()
  observed = ~imp.half_mask(x.shape[0], 6, 6)
  results = {}
  for chunk in (1, 10, 23):      # 23 calls of 1 step; 10 + 10 + 3; one call of 23
    monkeypatch.setattr(imp, "CHUNK_STEPS", chunk)
    results[chunk] = imp.impute_latent_optimization(model, x, observed, jax.random.key(0), steps=23, restarts=2,
                                                    batch_size=3, progress="test")
  for chunk in (10, 23):
    np.testing.assert_allclose(results[chunk], results[1], rtol=1e-5, atol=1e-6)
  one_step = imp.impute_latent_optimization(model, x, observed, jax.random.key(0), steps=1, restarts=2, batch_size=3)
  assert imp.missing_pixel_mse(results[10], x, ~observed) < 0.5 * imp.missing_pixel_mse(one_step, x, ~observed)
