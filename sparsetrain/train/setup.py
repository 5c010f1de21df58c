"""Everything a run needs that can be checked before its directory is touched.

`prepare` seeds, reads the data, builds the model and optimizer and plans the steps, so a
missing data file or an impossible setting fails (ConfigError) before anything is created.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsetrain.config.schema import Recipe
from sparsetrain.errors import ConfigError
from sparsetrain.tasks import Task, get_task
from sparsetrain.train.schedule import Plan, make_plan
from sparsetrain.train.seed import set_seed

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


@dataclass(frozen=True)
class Setup:
    recipe: Recipe
    seed: int
    device: torch.device
    dtype: torch.dtype
    task: Task
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    plan: Plan


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no CUDA GPU; "
                          "use --device cpu (or device: auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected cpu, cuda or auto, got {name!r}")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"dtype: expected one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def prepare(recipe: Recipe) -> Setup:
    device, dtype = resolve_device(recipe.device), resolve_dtype(recipe.dtype)
    if recipe.train.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer: expected one of {', '.join(OPTIMIZERS)}, "
                          f"got {recipe.train.optimizer!r}")
    seed = set_seed(recipe.seed)
    task = get_task(recipe.task)(recipe, device, dtype)
    task.build_data()
    model = task.build_model()
    optimizer = OPTIMIZERS[recipe.train.optimizer](model.parameters(), lr=recipe.train.lr)
    plan = make_plan(recipe, task.steps_per_epoch)
    return Setup(recipe, seed, device, dtype, task, model, optimizer, plan)
