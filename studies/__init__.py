"""Study files: `get_config(variant)` returns the study (see gen_jax/jobs/study.py)."""
