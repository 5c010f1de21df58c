"""Recipes: YAML in, frozen dataclasses out (see schema.py), and back to YAML."""

from sparsetrain.config.load import dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
from sparsetrain.config.schema import (
    DataConfig, EvalConfig, ModelConfig, Phase, Recipe, TrainConfig,
)

__all__ = [
    "DataConfig", "EvalConfig", "ModelConfig", "Phase", "Recipe", "TrainConfig",
    "dump_recipe", "load_recipe", "recipe_from_dict", "recipe_to_dict",
]
