"""Every mistake in a recipe is one line naming the file, the key path, the YAML line and the
rule; all of a recipe's mistakes come in one ConfigError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sparsetrain import ConfigError
from sparsetrain.config import load_recipe, recipe_from_dict


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    """The lines of the one ConfigError, without their file-name prefix (checked here)."""
    with pytest.raises(ConfigError) as caught:
        load_recipe(path, overrides or [])
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line[len(f"{path}: "):] for line in lines]


def test_an_unknown_key_suggests_a_close_match_and_lists_the_valid_keys(tmp_path):
    path = write(tmp_path, """
        task: lm
        model:
          hidden_size: 64
          hiden_size: 7
    """)
    assert problems(path) == [
        "model.hiden_size: unknown key (line 4); did you mean hidden_size? "
        "valid: embedding_size, encoder_layers, hidden_size, num_layers, tied"]


def test_an_unknown_key_without_a_close_match_still_lists_the_valid_keys(tmp_path):
    (problem,) = problems(write(tmp_path, "eval:\n  zzz: 1\n"))
    assert problem == "eval.zzz: unknown key (line 2); valid: batch_size, every_epochs, test"


def test_an_unknown_top_level_key_lists_method_and_schedule_as_valid(tmp_path):
    (problem,) = problems(write(tmp_path, "methd: dense\n"))
    assert problem.startswith("methd: unknown key (line 1); did you mean method? valid: ")
    assert "schedule" in problem and "model" in problem


def test_a_wrong_type_names_the_key_path_and_line(tmp_path):
    path = write(tmp_path, """
        seed: 1
        train:
          lr: fast
    """)
    assert problems(path) == ["train.lr: expected a number, got 'fast' (line 3)"]


def test_a_bool_is_not_an_integer(tmp_path):
    (problem,) = problems(write(tmp_path, "model:\n  hidden_size: true\n"))
    assert problem == "model.hidden_size: expected an integer, got True (line 2)"


def test_a_float_is_not_an_integer(tmp_path):
    (problem,) = problems(write(tmp_path, "train:\n  batch_size: 2.5\n"))
    assert problem == "train.batch_size: expected an integer, got 2.5 (line 2)"


def test_null_is_refused_where_the_setting_is_not_optional(tmp_path):
    (problem,) = problems(write(tmp_path, "train:\n  lr: null\n"))
    assert problem == "train.lr: expected a number, got None (line 2)"


def test_a_section_that_is_not_a_mapping_names_its_keys(tmp_path):
    (problem,) = problems(write(tmp_path, "model: 3\n"))
    assert problem == ("model: expected a mapping with keys embedding_size, encoder_layers, "
                       "hidden_size, num_layers, tied, got 3 (line 1)")


def test_a_document_that_is_not_a_mapping_is_refused(tmp_path):
    (problem,) = problems(write(tmp_path, "- a\n- b\n"))
    assert problem.startswith("<top level>: expected a mapping of recipe settings")


@pytest.mark.parametrize("key, value, rule", [
    ("device", "gpu", "one of cpu, cuda, auto"),
    ("dtype", "float16", "one of float32, bfloat16, float64"),
    ("backend", "triton", "one of torch, cupy, auto"),
])
def test_a_choice_outside_its_list_names_the_choices(tmp_path, key, value, rule):
    (problem,) = problems(write(tmp_path, f"{key}: {value}\n"))
    assert problem == f"{key}: must be {rule}, got {value!r} (line 1)"


@pytest.mark.parametrize("section, key, value, rule", [
    ("model", "hidden_size", "0", "> 0"),
    ("model", "num_layers", "-1", "> 0"),
    ("model", "embedding_size", "0", "> 0 or null"),
    ("train", "epochs", "0", "> 0"),
    ("train", "steps", "0", "> 0 or null"),
    ("train", "batch_size", "0", "> 0"),
    ("train", "bptt", "0", "> 0"),
    ("train", "lr", "0", "> 0"),
    ("train", "clip", "-1", "> 0 or null"),
    ("train", "dropout", "1", "in [0, 1)"),
    ("train", "dropout", "-0.1", "in [0, 1)"),
    ("train", "optimizer", "rmsprop", "one of sgd, adam"),
    ("eval", "batch_size", "0", "> 0"),
])
def test_a_value_outside_its_range_names_the_rule(tmp_path, section, key, value, rule):
    (problem,) = problems(write(tmp_path, f"{section}:\n  {key}: {value}\n"))
    assert problem.startswith(f"{section}.{key}: must be {rule}, got ")
    assert problem.endswith("(line 2)")


def test_tied_weights_with_a_different_embedding_width_name_both_keys(tmp_path):
    path = write(tmp_path, """
        model:
          hidden_size: 64
          embedding_size: 32
          tied: true
    """)
    assert problems(path) == [
        "model.tied, model.embedding_size: tied weights need embedding_size null or equal "
        "to hidden_size (64), got 32 (line 4)"]


def test_an_unknown_task_lists_the_registered_tasks(tmp_path):
    (problem,) = problems(write(tmp_path, "task: lmm\n"))
    assert problem.startswith("task: unknown task 'lmm' (line 1); did you mean lm? valid: ")
    assert "lm" in problem.split("valid: ")[1].split(", ")


def test_method_and_schedule_together_are_refused_naming_both(tmp_path):
    path = write(tmp_path, """
        method: dense
        schedule:
          - {method: dense, share: 1.0}
    """)
    assert problems(path) == ["method, schedule: give one, not both "
                              "(method is a one-phase schedule) (line 2)"]


def test_an_invalid_method_parameter_names_its_key_path_and_line(tmp_path):
    path = write(tmp_path, """
        method:
          name: coarse
          R: 8
          S: 9
    """)
    (problem,) = problems(path)
    assert problem.startswith("method.S: ")
    assert problem.endswith("(line 4)")


def test_an_unknown_method_is_refused_with_its_line(tmp_path):
    (problem,) = problems(write(tmp_path, "method: {name: corse}\n"))
    assert problem.startswith("method.name: unknown method 'corse'")
    assert problem.endswith("(line 1)")


def test_every_problem_of_a_method_is_reported(tmp_path):
    path = write(tmp_path, """
        method:
          name: coarse
          R: 8
          S: fast
          Q: 1
    """)
    found = problems(path)
    assert len(found) == 2
    assert any(p.startswith("method.S: ") and p.endswith("(line 4)") for p in found)
    assert any(p.startswith("method.Q: ") and p.endswith("(line 5)") for p in found)


def test_a_phase_method_problem_names_the_phase(tmp_path):
    path = write(tmp_path, """
        schedule:
          - method: {name: coarse, R: 8, S: 9}
            share: 0.75
          - method: dense
            share: 0.25
    """)
    (problem,) = problems(path)
    assert problem.startswith("schedule[0].method.S: ")
    assert problem.endswith("(line 2)")


def test_phase_shares_must_sum_to_one(tmp_path):
    path = write(tmp_path, """
        schedule:
          - {method: dense, share: 0.5}
          - {method: dense, share: 0.4}
    """)
    assert problems(path) == ["schedule: phase shares must sum to 1, got 0.5 + 0.4 = 0.9 (line 1)"]


@pytest.mark.parametrize("share", ["0", "1.5", "-0.25"])
def test_a_phase_share_must_be_in_zero_one(tmp_path, share):
    found = problems(write(tmp_path, f"schedule:\n  - {{method: dense, share: {share}}}\n"))
    assert found[0] == f"schedule[0].share: must be in (0, 1], got {float(share)!r} (line 2)"


def test_a_phase_needs_a_method(tmp_path):
    (problem,) = problems(write(tmp_path, "schedule:\n  - share: 1.0\n"))
    assert problem.startswith("schedule[0].method: required")
    assert problem.endswith("(line 2)")


def test_an_empty_schedule_is_refused(tmp_path):
    (problem,) = problems(write(tmp_path, "schedule: []\n"))
    assert problem.startswith("schedule: expected a non-empty list of phases")


def test_a_coarse_region_that_does_not_divide_the_gates_names_both_settings(tmp_path):
    path = write(tmp_path, """
        model: {hidden_size: 64}
        method: {name: coarse, P: 4, R: 6, S: 2}
    """)
    assert problems(path) == [
        "method.R: 4 x model.hidden_size = 256 columns must split into regions of "
        "P*R = 4*6 = 24 (line 2)"]


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    (problem,) = problems(write(tmp_path, "seed: 1\nseed: 2\n"))
    assert problem == "seed: duplicate key (lines 1 and 2); keep one"


def test_all_problems_of_a_recipe_are_reported_at_once(tmp_path):
    path = write(tmp_path, """
        device: gpu
        model:
          hiden_size: 7
        train:
          lr: fast
          dropout: 2
        schedule:
          - {method: dense, share: 0.5}
    """)
    found = problems(path)
    assert len(found) == 5
    assert [p.split(":")[0] for p in sorted(found)] == [
        "device", "model.hiden_size", "schedule", "train.dropout", "train.lr"]


def test_a_missing_recipe_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    assert str(caught.value) == f"{path}: recipe file not found"


def test_malformed_yaml_is_one_line_naming_the_file_and_line(tmp_path):
    path = write(tmp_path, "model:\n  hidden_size: 64\n  tied: [true\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: malformed YAML (line ")


def test_tabs_used_for_indentation_are_malformed_yaml_with_a_line(tmp_path):
    path = write(tmp_path, "model:\n\thidden_size: 64\n")
    with pytest.raises(ConfigError, match=r"malformed YAML \(line 2, column 1\)"):
        load_recipe(path)


def test_recipe_from_dict_problems_start_with_the_given_source():
    with pytest.raises(ConfigError) as caught:
        recipe_from_dict({"seed": "x"}, source="sweep grid point 3")
    assert str(caught.value) == "sweep grid point 3: seed: expected an integer, got 'x'"


def test_an_infinite_number_is_refused(tmp_path):
    (problem,) = problems(write(tmp_path, "train:\n  lr: .inf\n"))
    assert problem == "train.lr: expected a finite number, got inf (line 2)"


def test_a_phase_that_is_not_a_mapping_is_one_problem(tmp_path):
    (problem,) = problems(write(tmp_path, "schedule:\n  - dense\n"))
    assert problem == "schedule[0]: expected a phase {method: ..., share: ...}, got 'dense' (line 2)"


def test_fine_blocks_that_do_not_divide_the_batch_name_the_batch_size(tmp_path):
    path = write(tmp_path, """
        train: {batch_size: 20}
        method: {name: fine, My: 8, Mx: 4, K: 1}
    """)
    assert problems(path) == ["method.My: train.batch_size = 20 rows must split into "
                              "My = 8 high blocks (line 2)"]


def test_fine_cannot_drop_every_block_of_a_slice(tmp_path):
    path = write(tmp_path, """
        train: {batch_size: 16}
        method: {name: fine, My: 8, Mx: 4, K: 2}
    """)
    assert problems(path) == ["method.K: must be < train.batch_size / My = 2 blocks per "
                              "slice, got 2 (line 2)"]
