"""A site executor's typed local-training settings."""

from __future__ import annotations

import pytest

from consortium.learning.settings import LocalTrainingSettings


def test_each_site_gets_its_own_epochs_and_the_rest_the_default():
    s = LocalTrainingSettings(epochs=1, site_epochs={"cleveland": 5}, lr=0.1, batch_size=4, momentum=0.5)

    assert s.train_config("cleveland").epochs == 5
    assert s.train_config("hungary").epochs == 1
    assert (s.train_config().lr, s.train_config().batch_size, s.train_config().momentum) == (0.1, 4, 0.5)


def test_unknown_site_is_named_with_the_known_ones():
    s = LocalTrainingSettings(site_epochs={"clevland": 5, "hungary": 2})

    with pytest.raises(ValueError, match=r"names \['clevland'\], which are not sites of this consortium \['cleveland', 'hungary'\]"):
        s.check_sites(["cleveland", "hungary"])
    s.check_sites(["clevland", "hungary"])


def test_from_args_applies_defaults_then_the_job_arguments():
    s = LocalTrainingSettings.from_args({"lr": 0.2}, {"lr": 0.1, "momentum": 0.9})

    assert (s.lr, s.momentum) == (0.2, 0.9)


@pytest.mark.parametrize("args, match", [
    ({"site_epochs": ["a"]}, "must map site names"), ({"site_epochs": {"a": 1.5}}, r"site_epochs\['a'\]"),
    ({"seed": "0"}, "seed"), ({"fedprox_mu": "0.1"}, "fedprox_mu"), ({"batch": 8}, "unknown"),
])
def test_bad_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        LocalTrainingSettings.from_args(args)


def test_round_seeds_differ_by_round_and_site_and_repeat():
    s = LocalTrainingSettings(seed=3)

    seeds = {s.round_seed(r, site) for r in range(3) for site in ("a", "b")}

    assert len(seeds) == 6
    assert s.round_seed(2, "a") == LocalTrainingSettings(seed=3).round_seed(2, "a")


def test_settings_cannot_be_changed_after_validation():
    s = LocalTrainingSettings(site_epochs={"a": 2})
    with pytest.raises(TypeError):
        s.site_epochs["a"] = 0
