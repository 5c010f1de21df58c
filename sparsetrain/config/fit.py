"""Does a method's block structure fit the model and batch it will act on?

`sparsify.resolve` checks a method on its own (S < R, K >= 0 ...); whether it divides the
gate gradient of *this* recipe (N x 4H, N = train.batch_size, H = model.hidden_size) needs
both the method and the recipe, so it is checked here, when the recipe is read, instead of
failing at the first backward step.
"""

from __future__ import annotations

from typing import Any, Mapping

from sparsetrain.config.schema import Recipe


def shape_problems(method: Mapping[str, Any], recipe: Recipe) -> list[tuple[str, str]]:
    """(parameter, problem) pairs; each problem names the recipe keys it ties the method to."""
    columns = 4 * recipe.model.hidden_size
    rows = recipe.train.batch_size
    gates = f"4 x model.hidden_size = {columns}"
    problems: list[tuple[str, str]] = []
    if method["name"] == "coarse" and {"P", "R"} <= method.keys():
        width, region = method["P"], method["R"]
        if columns % (width * region):
            problems.append(("R", f"{gates} columns must split into regions of P*R = "
                                  f"{width}*{region} = {width * region}"))
    elif method["name"] == "fine" and {"Mx", "My", "K"} <= method.keys():
        width, height, dropped = method["Mx"], method["My"], method["K"]
        if columns % width:
            problems.append(("Mx", f"{gates} columns must split into Mx = {width} wide slices"))
        if rows % height:
            problems.append(("My", f"train.batch_size = {rows} rows must split into "
                                   f"My = {height} high blocks"))
        elif dropped >= rows // height:
            problems.append(("K", f"must be < train.batch_size / My = {rows // height} "
                                  f"blocks per slice, got {dropped}"))
    return problems
