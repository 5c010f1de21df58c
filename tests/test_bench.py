"""`sparsetrain bench`: argument errors on the CPU, and the report's arithmetic and files."""

import json

import pytest
from click.testing import CliRunner

from sparsetrain.bench import measure, report
from sparsetrain.cli import main


def run(*args):
    return CliRunner().invoke(main, ["bench", *args])


def test_an_unknown_shape_is_a_user_error_naming_the_valid_ones():
    result = run("--shape", "huge")
    assert result.exit_code == 2
    assert "ptb, nmt, large, xl or H,N,T,L" in result.output


def test_a_custom_shape_is_four_positive_integers():
    assert measure.parse_shape("256,32,10,3") == measure.Shape("256,32,10,3", 256, 32, 10, 3)
    with pytest.raises(Exception, match="H,N,T,L"):
        measure.parse_shape("256,32,10")


def test_an_unknown_method_is_a_user_error():
    result = run("--methods", "dense,sparse")
    assert result.exit_code == 2
    assert "unknown sparse" in result.output


def test_a_sparsity_outside_zero_one_is_a_user_error():
    result = run("--sparsity", "0.5,1.5")
    assert result.exit_code == 2
    assert "--sparsity" in result.output


def test_method_specs_follow_the_sparsity():
    shape = measure.parse_shape("large")
    assert measure.method_spec("coarse", 0.75, shape) == {"name": "coarse", "P": 4, "R": 8, "S": 6}
    assert measure.method_spec("fine", 0.5, shape) == {"name": "fine", "My": 8, "Mx": 4, "K": 8}
    assert measure.method_spec("meprop", 0.25, shape)["keep"] == 0.75
    assert measure.method_spec("cudnn", 0.5, shape) is None


def test_overridden_settings_hold_inside_the_block_and_are_restored_after_an_error():
    import types

    module = types.SimpleNamespace(USE_TMA=True, WIDE=3)
    with pytest.raises(RuntimeError):
        with measure.overridden(module, {"USE_TMA": False, "WIDE": 0}):
            assert (module.USE_TMA, module.WIDE) == (False, 0)
            raise RuntimeError("a kernel failed")
    assert (module.USE_TMA, module.WIDE) == (True, 3)


def _rows():
    base = {"shape": "large", "dtype": "bfloat16", "train_ms": 1.0}
    return [dict(base, method="dense", sparsity=0.0, backward_ms=4.0),
            dict(base, method="cudnn", sparsity=0.0, backward_ms=2.0),
            dict(base, method="coarse", sparsity=0.5, backward_ms=1.0)]


def test_speedups_are_relative_to_dense_and_cudnn_of_the_same_shape_and_dtype():
    rows = report.with_speedups(_rows())
    coarse = rows[2]
    assert coarse["speedup_vs_dense"] == pytest.approx(4.0)
    assert coarse["speedup_vs_cudnn"] == pytest.approx(2.0)


def test_json_and_chart_are_written(tmp_path):
    rows = report.with_speedups(_rows())
    report.write_json(rows, tmp_path / "r.json", {"repeats": 20})
    report.write_chart(rows, tmp_path / "r.png")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["results"][2]["method"] == "coarse"
    assert "torch" in saved["environment"]
    assert (tmp_path / "r.png").stat().st_size > 1000


@pytest.mark.gpu
def test_interleaved_timing_gives_each_configuration_its_medians_in_order():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("cupy")
    shape = measure.parse_shape("128,64,4,1")
    rows = measure.time_methods([("dense", 0.0), ("coarse", 0.5), ("cudnn", 0.0)], shape,
                                torch.float32, warmup=1, repeats=10, rounds=5)
    assert [(r["method"], r["sparsity"]) for r in rows] == [("dense", 0.0), ("coarse", 0.5),
                                                            ("cudnn", 0.0)]
    for row in rows:
        assert row["backward_ms"] > 0 and row["train_ms"] > 0
        assert len(row["backward_ms_rounds"]) == 5
