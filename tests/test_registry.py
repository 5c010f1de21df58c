"""The one registry shape behind tasks and methods."""

import pytest

from sparsetrain.registry import Registry


def test_registered_class_is_found_by_name_and_knows_its_name():
    registry = Registry("widget")

    @registry.register("round")
    class Round:
        pass

    assert registry["round"] is Round and Round.name == "round"
    assert "round" in registry and registry.names() == ["round"]


def test_a_name_registered_twice_is_refused():
    registry = Registry("widget")
    registry.register("round")(type("First", (), {}))
    with pytest.raises(ValueError, match="widget 'round' is registered twice"):
        registry.register("round")(type("Second", (), {}))


def test_every_method_of_the_design_is_registered():
    from sparsetrain import sparsify

    assert sparsify.names() == ["adaptive", "coarse", "dense", "fine", "meprop", "threshold"]
