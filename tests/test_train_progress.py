"""Progress: a live bar with loss, perplexity, tokens/s and sparsity on a terminal; plain
lines per evaluation otherwise."""

from __future__ import annotations

import io

from click.testing import CliRunner
from rich.console import Console

from sparsetrain.cli import main
from sparsetrain.train.progress import ProgressDisplay

TRAIN = {"loss": 4.0, "tokens_per_s": 12345.0, "method": "coarse", "sparsity": 0.5}
EVAL = {"epoch": 1, "step": 5, "split": "valid", "perplexity": 54.6}


def test_on_a_terminal_the_live_display_shows_epoch_loss_perplexity_speed_and_sparsity():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with ProgressDisplay(10, 5, "perplexity", live=True, console=console) as display:
        display.step(5)
        display.train_line(TRAIN)
        display.eval_line(EVAL)
    text = screen.getvalue()
    for part in ("epoch 2/2", "loss 4.000", "ppl 54.6", "12,345 tok/s", "coarse sparsity 0.50",
                 "valid perplexity 54.60"):
        assert part in text, text


def test_off_a_terminal_each_evaluation_is_one_plain_line(write_recipe, tmp_path):
    result = CliRunner().invoke(main, ["run", str(write_recipe()), "--out",
                                       str(tmp_path / "runs")])
    assert result.exit_code == 0
    assert "\x1b[" not in result.output  # no terminal control codes in logs
    lines = result.output.splitlines()
    assert lines[0].startswith("epoch 1 step 24/24 valid perplexity ")
    assert lines[1].startswith("epoch 1 step 24/24 test perplexity ")
