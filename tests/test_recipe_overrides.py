"""`--set key.path=value` changes the recipe before validation; values are YAML scalars."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sparsetrain import ConfigError
from sparsetrain.config import load_recipe


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(textwrap.dedent("""
        method: {name: dense}
        model: {hidden_size: 64}
        train: {lr: 1.0}
    """).lstrip())
    return path


@pytest.fixture
def schedule_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(textwrap.dedent("""
        schedule:
          - {method: {name: coarse, R: 8, S: 4}, share: 0.75}
          - {method: dense, share: 0.25}
    """).lstrip())
    return path


def test_set_parses_an_integer(recipe_file):
    assert load_recipe(recipe_file, ["model.hidden_size=128"]).model.hidden_size == 128


def test_set_parses_a_float(recipe_file):
    assert load_recipe(recipe_file, ["train.lr=0.25"]).train.lr == 0.25


def test_set_parses_a_bool(recipe_file):
    assert load_recipe(recipe_file, ["model.tied=true"]).model.tied is True


def test_set_parses_null(recipe_file):
    assert load_recipe(recipe_file, ["train.clip=null"]).train.clip is None


def test_set_parses_a_string(recipe_file):
    assert load_recipe(recipe_file, ["data.dir=/tmp/ptb data"]).data.dir == "/tmp/ptb data"


def test_the_last_set_of_a_key_wins(recipe_file):
    assert load_recipe(recipe_file, ["seed=1", "seed=2"]).seed == 2


def test_set_reaches_a_section_the_recipe_does_not_mention(recipe_file):
    assert load_recipe(recipe_file, ["eval.batch_size=3"]).eval.batch_size == 3


def test_set_changes_method_parameters_and_the_method_itself(recipe_file):
    recipe = load_recipe(recipe_file, ["method.name=coarse", "method.R=8", "method.S=4"])
    method = recipe.schedule[0].method
    assert (method["name"], method["R"], method["S"]) == ("coarse", 8, 4)


def test_set_changes_one_phase_of_a_schedule_by_index(schedule_file):
    recipe = load_recipe(schedule_file, ["schedule.0.share=0.5", "schedule.1.share=0.5",
                                         "schedule.0.method.S=2"])
    assert [phase.share for phase in recipe.schedule] == [0.5, 0.5]
    assert recipe.schedule[0].method["S"] == 2


def test_setting_a_whole_schedule_replaces_the_recipes_method(recipe_file):
    recipe = load_recipe(recipe_file, [
        "schedule=[{method: {name: coarse, R: 8, S: 4}, share: 0.75}, "
        "{method: dense, share: 0.25}]"])
    assert [phase.method["name"] for phase in recipe.schedule] == ["coarse", "dense"]


def test_a_set_value_is_still_validated_and_blamed_on_the_flag(recipe_file):
    with pytest.raises(ConfigError) as caught:
        load_recipe(recipe_file, ["train.lr=fast"])
    assert str(caught.value) == (f"{recipe_file}: train.lr: expected a number, got 'fast' "
                                 "(from --set train.lr=fast)")


def test_set_on_an_unknown_key_names_the_valid_keys(recipe_file):
    with pytest.raises(ConfigError) as caught:
        load_recipe(recipe_file, ["model.hiden_size=3"])
    message = str(caught.value)
    assert message.startswith(f"{recipe_file}: --set model.hiden_size=3: model.hiden_size: ")
    assert "did you mean hidden_size?" in message
    assert "valid: embedding_size, encoder_layers, hidden_size, num_layers, tied" in message


def test_set_on_an_unknown_top_level_key_names_the_valid_keys(recipe_file):
    with pytest.raises(ConfigError, match=r"--set trian\.lr=1: trian: unknown key; "
                                          r"did you mean train\? valid: .*model.*train"):
        load_recipe(recipe_file, ["trian.lr=1"])


def test_set_below_a_single_value_is_refused(recipe_file):
    with pytest.raises(ConfigError, match=r"--set train\.lr\.x=1: train\.lr is a single value"):
        load_recipe(recipe_file, ["train.lr.x=1"])


def test_set_without_an_equals_sign_names_the_expected_form(recipe_file):
    with pytest.raises(ConfigError, match=r"--set train\.lr: expected key\.path=value"):
        load_recipe(recipe_file, ["train.lr"])


def test_set_on_a_phase_that_does_not_exist_names_the_valid_numbers(schedule_file):
    with pytest.raises(ConfigError, match=r"schedule\.2: expected a phase number 0\.\.1"):
        load_recipe(schedule_file, ["schedule.2.share=1"])


def test_set_of_a_method_parameter_on_a_schedule_recipe_says_where_to_set_it(schedule_file):
    with pytest.raises(ConfigError, match=r"set schedule\.<phase>\.method\.S instead"):
        load_recipe(schedule_file, ["method.S=2"])


def test_bad_overrides_and_bad_recipe_values_are_reported_together(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("device: gpu\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(path, ["nope=1", "train.lr"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
