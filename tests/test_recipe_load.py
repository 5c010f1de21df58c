"""A valid recipe becomes a frozen, typed Recipe; every default is filled in and written back."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetrain.config import Phase, Recipe, dump_recipe, load_recipe, recipe_from_dict


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_an_empty_recipe_is_all_defaults_with_a_dense_one_phase_schedule(tmp_path):
    recipe = load_recipe(write(tmp_path, "# nothing set\n"))
    assert recipe == Recipe(schedule=(Phase(method={"name": "dense"}, share=1.0),))


def test_the_recipe_is_frozen(tmp_path):
    recipe = load_recipe(write(tmp_path, "seed: 7\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.seed = 8  # type: ignore[misc]


def test_settings_reach_their_sections(tmp_path):
    recipe = load_recipe(write(tmp_path, """
        seed: 7
        device: cpu
        data: {dir: /somewhere}
        model: {hidden_size: 64, num_layers: 1, tied: true}
        train: {steps: 100, batch_size: 8, optimizer: adam, clip: null}
        eval: {batch_size: 4, test: false}
    """))
    assert (recipe.seed, recipe.device, recipe.data.dir) == (7, "cpu", "/somewhere")
    assert (recipe.model.hidden_size, recipe.model.num_layers, recipe.model.tied) == (64, 1, True)
    assert (recipe.train.steps, recipe.train.batch_size, recipe.train.optimizer) == (100, 8, "adam")
    assert recipe.train.clip is None
    assert (recipe.eval.batch_size, recipe.eval.test) == (4, False)
    assert recipe.train.bptt == 35  # untouched settings keep their defaults


def test_an_integer_is_accepted_where_a_number_is_expected_and_becomes_a_float(tmp_path):
    recipe = load_recipe(write(tmp_path, "train: {lr: 2, clip: 1}\n"))
    assert recipe.train.lr == 2.0 and isinstance(recipe.train.lr, float)
    assert isinstance(recipe.train.clip, float)


def test_exponent_notation_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML) reads `1e-3` as a string; a recipe author means a number.
    recipe = load_recipe(write(tmp_path, "train: {lr: 1e-3}\n"))
    assert recipe.train.lr == pytest.approx(0.001)


def test_method_is_a_one_phase_schedule_with_its_defaults_filled_in(tmp_path):
    recipe = load_recipe(write(tmp_path, "method: {name: coarse, R: 8, S: 4}\n"))
    (phase,) = recipe.schedule
    assert phase.share == 1.0
    assert phase.method["name"] == "coarse"
    assert (phase.method["R"], phase.method["S"]) == (8, 4)
    assert phase.method["P"] == 4  # the method's default, written out


def test_a_method_may_be_given_by_name_alone(tmp_path):
    recipe = load_recipe(write(tmp_path, "method: dense\n"))
    assert recipe.schedule == (Phase(method={"name": "dense"}, share=1.0),)


def test_a_schedule_keeps_its_phases_in_order(tmp_path):
    recipe = load_recipe(write(tmp_path, """
        schedule:
          - method: {name: coarse, R: 8, S: 4}
            share: 0.75
          - method: {name: dense}
            share: 0.25
    """))
    assert [phase.method["name"] for phase in recipe.schedule] == ["coarse", "dense"]
    assert [phase.share for phase in recipe.schedule] == [0.75, 0.25]


def test_shares_that_sum_to_one_up_to_rounding_are_accepted(tmp_path):
    recipe = load_recipe(write(tmp_path, """
        schedule:
          - {method: dense, share: 0.1}
          - {method: dense, share: 0.2}
          - {method: dense, share: 0.7}
    """))
    assert len(recipe.schedule) == 3


def test_dump_writes_every_default_and_the_schedule_as_a_list(tmp_path):
    dumped = yaml.safe_load(dump_recipe(load_recipe(write(tmp_path, "method: dense\n"))))
    assert "method" not in dumped
    assert dumped["schedule"] == [{"method": {"name": "dense"}, "share": 1.0, "restart_lr": False}]
    for section, kind in (("model", "ModelConfig"), ("train", "TrainConfig"),
                          ("eval", "EvalConfig"), ("data", "DataConfig")):
        schema_class = getattr(__import__("sparsetrain.config", fromlist=[kind]), kind)
        assert set(dumped[section]) == {f.name for f in dataclasses.fields(schema_class)}
    assert set(dumped) == {f.name for f in dataclasses.fields(Recipe)}


@pytest.mark.parametrize("text", [
    "seed: 3\n",
    "method: {name: coarse, R: 8, S: 2}\nmodel: {embedding_size: 512, tied: true}\n",
    "schedule:\n  - {method: {name: coarse, R: 8, S: 4}, share: 0.75}\n"
    "  - {method: dense, share: 0.25}\ntrain: {steps: 10, clip: null, lr: 1e-3}\n",
    "data: {dir: ./x}\neval: {test: false}\ndevice: cpu\ndtype: float64\n",
])
def test_dump_then_load_gives_an_equal_recipe(tmp_path, text):
    recipe = load_recipe(write(tmp_path, text))
    assert recipe_from_dict(yaml.safe_load(dump_recipe(recipe))) == recipe


def test_recipe_from_dict_validates_plain_data():
    recipe = recipe_from_dict({"model": {"hidden_size": 32}}, source="inline")
    assert recipe.model.hidden_size == 32


def test_recipe_from_dict_does_not_change_the_mapping_it_is_given():
    mapping = {"method": {"name": "dense"}, "train": {"lr": 2}}
    recipe_from_dict(mapping, overrides=["train.lr=3", "model.hidden_size=8"])
    assert mapping == {"method": {"name": "dense"}, "train": {"lr": 2}}


def _finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


_METHODS = st.one_of(
    st.just({"name": "dense"}),
    st.integers(0, 7).map(lambda dropped: {"name": "coarse", "R": 8, "S": dropped}),
)
_VALID_RECIPES = st.fixed_dictionaries({}, optional={
    "seed": st.integers(0, 2**31),
    "device": st.sampled_from(["cpu", "cuda", "auto"]),
    "dtype": st.sampled_from(["float32", "bfloat16", "float64"]),
    "backend": st.sampled_from(["torch", "cupy", "auto"]),
    "data": st.fixed_dictionaries({"dir": st.none() | st.just("/data/ptb")}),
    "model": st.fixed_dictionaries({}, optional={
        "hidden_size": st.sampled_from([8, 16, 64, 512]),  # 4H splits into 32-wide regions
        "num_layers": st.integers(1, 4),
        "tied": st.booleans(),
    }),
    "train": st.fixed_dictionaries({}, optional={
        "epochs": st.integers(1, 100),
        "steps": st.none() | st.integers(1, 10**6),
        "batch_size": st.integers(1, 256),
        "optimizer": st.sampled_from(["sgd", "adam"]),
        "lr": _finite(1e-6, 10),
        "clip": st.none() | _finite(1e-3, 100),
        "dropout": _finite(0, 0.99),
    }),
    "eval": st.fixed_dictionaries({}, optional={"test": st.booleans()}),
    "method": _METHODS,
})


@settings(max_examples=60, deadline=None)
@given(_VALID_RECIPES)
def test_any_valid_recipe_survives_dump_and_load(mapping):
    recipe = recipe_from_dict(mapping)
    assert recipe_from_dict(yaml.safe_load(dump_recipe(recipe))) == recipe
