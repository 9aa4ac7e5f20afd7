"""The training log: JSON lines plus TensorBoard event files that TensorBoard can parse."""
import io
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from gen_jax.train.metrics_log import MetricsLog, read_metrics


def _events(tb_dir):
  """Parse every record of the event files (TFRecord framing: length, crc, payload, crc) as Event protos."""
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(tb_dir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      payload = data[pos + 12:pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event()
      event.ParseFromString(payload)
      events.append(event)
  return events


def test_scalars_and_images_reach_the_event_file_and_the_jsonl(tmp_path):
  log = MetricsLog(tmp_path)
  log.write(10, {"loss": 1.5, "kl": np.float32(0.25), "bad": float("nan")})
  log.write(20, {"loss": 1.25}, split="eval")
  grid = np.zeros((6, 4, 3), np.uint8)
  grid[:, :2, 0] = 255
  log.write_images(20, {"samples": grid})
  log.close()

  scalars = {(v.tag, e.step): v.simple_value for e in _events(tmp_path / "tensorboard")
             for v in e.summary.value if v.HasField("simple_value")}
  assert scalars == {("train/loss", 10): 1.5, ("train/kl", 10): 0.25, ("eval/loss", 20): 1.25}  # NaN skipped
  images = [(v.tag, e.step, v.image) for e in _events(tmp_path / "tensorboard") for v in e.summary.value
            if v.HasField("image")]
  assert [(tag, step) for tag, step, _ in images] == [("images/samples", 20)]
  decoded = np.asarray(Image.open(io.BytesIO(images[0][2].encoded_image_string)).convert("RGB"))
  np.testing.assert_array_equal(decoded, grid)

  rows = read_metrics(tmp_path / "metrics.jsonl")
  assert rows[0]["step"] == 10 and rows[0]["loss"] == 1.5 and rows[1] == {"step": 20, "split": "eval", "loss": 1.25}


def test_opening_the_log_does_not_import_pytorch(tmp_path):
  """tensorboardX imports torch when it can (~2 s per train.py start); the log hides it, and torch stays
  importable afterwards."""
  pytest.importorskip("torch")
  code = ("import sys, json; from gen_jax.train.metrics_log import MetricsLog; "
          f"MetricsLog({str(tmp_path)!r}).close(); before = 'torch' in sys.modules; import torch; "
          "print(json.dumps([before, hasattr(torch, 'Tensor')]))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True]
