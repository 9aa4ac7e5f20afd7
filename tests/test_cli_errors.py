"""Command-line behaviour of train.py / eval.py: Ctrl-C, --help, and the last line of train.py."""
import subprocess
import sys

import pytest

from gen_jax import cli
from gen_jax.errors import ConfigError
from gen_jax.train.loop import done_message

from conftest import REPO_ROOT


def test_ctrl_c_outside_the_training_loop_is_one_line_and_exit_130(capsys, monkeypatch):
  def interrupted():
    raise KeyboardInterrupt

  monkeypatch.setattr(cli, "exit_interrupted", lambda: sys.exit(cli.EXIT_INTERRUPTED))  # the real one is os._exit
  with pytest.raises(SystemExit) as e:
    cli.main_guard(interrupted)
  assert e.value.code == 130
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert lines == [cli.INTERRUPTED]
  assert lines[0].startswith("interrupted (Ctrl-C); nothing already saved was lost: rerun the same command")
  assert "Traceback" not in captured.err


def test_ctrl_c_exit_path_in_a_real_process():
  """What a shell sees: exit code 130, the one line on stderr, no traceback (os._exit, no interpreter shutdown)."""
  code = ("from gen_jax import cli\ndef main():\n  print('started', flush=True)\n"
          "  raise KeyboardInterrupt\ncli.main_guard(main)\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 130
  assert proc.stdout == "started\n" and proc.stderr.strip() == cli.INTERRUPTED


def test_main_guard_still_turns_errors_into_exit_2(capsys):
  def bad():
    raise ConfigError("config.x is wrong; use y")

  with pytest.raises(SystemExit) as e:
    cli.main_guard(bad)
  assert e.value.code == 2 and capsys.readouterr().err == "error: config.x is wrong; use y\n"


@pytest.mark.parametrize("script,expected,absent", [
    ("train.py", ["--config=FILE[:VARIANT]", "--config.KEY=VALUE", "--config.train.num_steps=2000", "vae.py",
                  "--workdir"], []),
    ("eval.py", ["[--config.KEY=VALUE ...]", "--config.eval.num_samples=10000", "--compare"],
     ["--config=FILE"]),
])
def test_help_lists_the_config_flags(script, expected, absent):
  proc = subprocess.run([sys.executable, script, "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.startswith(f"usage: {script} ")
  for text in expected:
    assert text in proc.stdout, text
  for text in absent:
    assert text not in proc.stdout, text


def _summary(**kw):
  base = dict(step=200, start_step=0, num_steps=200, metrics={"loss": 90.12341, "kl": 20.0, "steps_per_sec": 3.0},
              progress_metrics=("loss", "kl"), workdir="runs/vae")
  base.update(kw)
  return base


def test_done_message_after_training():
  assert done_message(_summary()) == "done: step 200, loss 90.1234, kl 20.0000; outputs in runs/vae"
  assert done_message(_summary(metrics={})) == "done: step 200; outputs in runs/vae"   # never a dangling ", ;"


def test_done_message_names_the_last_sample_grid(tmp_path):
  grid = tmp_path / "images" / "samples_0000200.png"
  grid.parent.mkdir()
  grid.write_bytes(b"png")
  assert done_message(_summary(workdir=str(tmp_path))).endswith(f"; outputs in {tmp_path}; samples: {grid}")


@pytest.mark.parametrize("start,num_steps", [(200, 200), (200, 100)])
def test_done_message_when_there_was_nothing_to_train(start, num_steps):
  msg = done_message(_summary(step=start, start_step=start, num_steps=num_steps, metrics={}))
  assert msg == (f"already at step {start} >= config.train.num_steps={num_steps}: nothing to train; raise "
                 "--config.train.num_steps to continue, evaluate with `python eval.py --workdir=runs/vae`")
  assert ", ;" not in msg
