"""Every recipe shipped in `recipes/` loads, opens with the command that runs it, and
survives a dump/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparsetrain.config import dump_recipe, load_recipe, recipe_from_dict

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SWEEP_KEYS = {"sweep", "grid", "variants"}


def shipped_recipes() -> list[Path]:
    """Recipe files; a file with a top-level sweep/grid key is a sweep, checked elsewhere."""
    found = []
    for path in sorted(RECIPES.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text())
        if not (isinstance(data, dict) and SWEEP_KEYS & data.keys()):
            found.append(path)
    return found


def test_the_paper_and_quickstart_recipes_are_shipped():
    assert {"ptb-lm.yaml", "ptb-quick.yaml"} <= {path.name for path in shipped_recipes()}


@pytest.mark.parametrize("path", shipped_recipes(), ids=lambda path: path.name)
def test_a_shipped_recipe_is_valid(path):
    load_recipe(path)


@pytest.mark.parametrize("path", shipped_recipes(), ids=lambda path: path.name)
def test_a_shipped_recipe_opens_with_the_command_that_runs_it(path):
    head = path.read_text().split("\n\n")[0]
    assert f"sparsetrain run recipes/{path.name}" in head


@pytest.mark.parametrize("path", shipped_recipes(), ids=lambda path: path.name)
def test_a_shipped_recipe_survives_dump_and_load(path):
    recipe = load_recipe(path)
    assert recipe_from_dict(yaml.safe_load(dump_recipe(recipe))) == recipe


def test_the_paper_recipe_has_the_papers_settings():
    recipe = load_recipe(RECIPES / "ptb-lm.yaml")
    assert recipe.task == "lm"
    assert (recipe.model.hidden_size, recipe.model.num_layers) == (512, 2)
    train = recipe.train
    assert (train.batch_size, train.bptt, train.epochs, train.steps) == (64, 35, 40, None)
    assert (train.optimizer, train.lr, train.lr_decay, train.decay_after_epoch) == \
        ("sgd", 1.0, 0.8, 6)
    assert (train.clip, train.init_scale, train.dropout) == (5.0, 0.05, 0.5)
    assert [phase.method["name"] for phase in recipe.schedule] == ["dense"]


def test_the_paper_recipes_coarse_then_dense_command_gives_that_schedule():
    # The override in the recipe's header comment, as a user would paste it.
    header = (RECIPES / "ptb-lm.yaml").read_text().split("\n\n")[0]
    line = next(text for text in header.splitlines() if "--set 'schedule=" in text)
    override = line.split("--set '", 1)[1].rsplit("'", 1)[0]
    recipe = load_recipe(RECIPES / "ptb-lm.yaml", [override])
    assert [(phase.method["name"], phase.share) for phase in recipe.schedule] == \
        [("coarse", 0.75), ("dense", 0.25)]
    assert (recipe.schedule[0].method["R"], recipe.schedule[0].method["S"]) == (8, 4)


def test_the_quick_recipe_is_cpu_sized():
    recipe = load_recipe(RECIPES / "ptb-quick.yaml")
    assert recipe.device == "cpu"
    assert recipe.train.steps is not None and recipe.train.steps <= 1000
    assert recipe.model.hidden_size <= 256
