import json

import pytest
from hypothesis import given, settings, strategies as st

from imae.config import TrainConfig
from imae.errors import ConfigError


def test_round_trip(tmp_path):
    cfg = TrainConfig(beta=3.0, vat=False, seed=4).validate()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.load(path) == cfg


@pytest.mark.parametrize("values, fragment", [
    ({"beta": -1}, "beta"), ({"categories": 1}, "categories"), ({"batch_size": 1}, "batch_size"),
    ({"epochs": 0}, "epochs"), ({"dataset": "cifar"}, "dataset"), ({"model": "gan"}, "model"),
    ({"lr_decay": 1.5}, "lr_decay"), ({"beta": float("nan")}, "beta"), ({"unknown": 1}, "unknown"),
    ({"vat": "yes"}, "vat"), ({"epochs": 2.5}, "epochs"), ({"precision": "fp16"}, "precision"),
])
def test_invalid_values_name_the_option(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig.from_dict(values)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(TrainConfig.__dataclass_fields__) + ["junk"]), json_values, max_size=6))
def test_fuzz_config_parser(values):
    try:
        TrainConfig.from_dict(values)
    except ConfigError:
        pass
