"""`sparsetrain bench`: backward time of each method against our dense and cuDNN, on a GPU."""

from __future__ import annotations

import pathlib

import click

from sparsetrain.cli._errors import UserError, user_errors

DEFAULT_OUT = "benchmarks/results/bench.json"


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sparsity: comma-separated numbers in (0, 1), got {text!r}") from None
    if not values or not all(0 < v < 1 for v in values):
        raise UserError(f"--sparsity: comma-separated numbers in (0, 1), got {text!r}")
    return values


@click.command("bench")
@click.option("--shape", "shapes", multiple=True, default=("ptb", "nmt", "large", "xl"),
              show_default=True, help="ptb, nmt, large, xl, or H,N,T,L; repeatable.")
@click.option("--dtype", "dtypes", multiple=True, default=("float32", "bfloat16"),
              show_default=True, type=click.Choice(["float32", "bfloat16"]), help="Repeatable.")
@click.option("--methods", default="dense,coarse,fine,meprop,cudnn", show_default=True,
              help="Comma-separated: dense, coarse, fine, meprop, cudnn.")
@click.option("--sparsity", default="0.5", show_default=True,
              help="Comma-separated sparsities for coarse, fine and meprop (meprop keeps 1-s).")
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=20),
              help="Timed calls per configuration, in 5 interleaved rounds (median reported).")
@click.option("--out", "out", default=DEFAULT_OUT, show_default=True,
              type=click.Path(dir_okay=False), help="Results JSON; the PNG chart goes beside it.")
@user_errors
def command(shapes, dtypes, methods, sparsity, repeats, out):
    """Time the LSTM backward of each method, with cuDNN's, on this machine's GPU."""
    from sparsetrain.bench import measure, report

    parsed = [measure.parse_shape(s) for s in shapes]
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in method_list if m not in measure.METHODS]
    if unknown or not method_list:
        raise UserError(f"--methods: unknown {', '.join(unknown) or '(none)'}; "
                        f"valid: {', '.join(measure.METHODS)}")
    sparsities = _floats(sparsity)
    import torch
    if not torch.cuda.is_available():
        raise UserError("bench needs a CUDA GPU; none is visible")
    from sparsetrain.kernels import cupy_available
    if not cupy_available() and set(method_list) - {"cudnn"}:
        raise UserError("bench needs CuPy for our methods (pip install -e '.[gpu]')")
    configurations = [(method, level) for method in method_list
                      for level in ([0.0] if method in ("dense", "cudnn") else sparsities)]
    rows = []
    for shape in parsed:
        for dtype in dtypes:
            timed = measure.time_methods(configurations, shape, measure.DTYPES[dtype],
                                         repeats=repeats)
            for row in timed:
                rows.append({"shape": shape.name, "hidden": shape.hidden, "batch": shape.batch,
                             "steps": shape.steps, "layers": shape.layers, "dtype": dtype,
                             **row})
                click.echo(f"{shape.name} {dtype} {row['method']} {row['sparsity']:.2f}: "
                           f"{row['backward_ms']:.3f} ms backward", err=True)
    rows = report.with_speedups(rows)
    out_path = pathlib.Path(out)
    report.write_json(rows, out_path, {"repeats": repeats, "sparsity": sparsities})
    report.write_chart(rows, out_path.with_suffix(".png"))
    report.print_table(rows)
