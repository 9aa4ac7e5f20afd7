"""Exceptions raised for bad user input. Each message names the problem and the fix."""


class GenJaxError(Exception):
  """Base class of every error gen_jax raises on purpose."""


class ConfigError(GenJaxError, ValueError):
  """An unknown config key or an invalid config value."""


class DatasetError(GenJaxError, ValueError):
  """A missing, corrupt or inconsistent dataset."""


class CheckpointError(GenJaxError, RuntimeError):
  """A checkpoint that cannot be read or does not match the model."""


class NonFiniteLossError(GenJaxError, FloatingPointError):
  """Training produced a NaN or Inf loss."""
