"""A site executor's typed local-training settings."""

from __future__ import annotations

import pytest

from consortium.training_settings import LocalTrainingSettings


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


# -- a wrong type or range is a ValueError naming the field and the value, before training ----------
@pytest.mark.parametrize("args, message", [
    ({"lr": "fast"}, "lr = 'fast' must be a positive number"),
    ({"lr": float("nan")}, "lr = nan must be a positive number"),
    ({"lr": float("inf")}, "lr = inf must be a positive number"),
    ({"lr": True}, "lr = True must be a positive number"),
    ({"epochs": "3"}, "epochs = '3' must be an integer in [1, 1000]"),
    ({"epochs": True}, "epochs = True must be an integer in [1, 1000]"),
    ({"epochs": 10**12}, "epochs = 1000000000000 must be an integer in [1, 1000]"),
    ({"batch_size": 0}, "batch_size = 0 must be an integer in [1, 65536]"),
    ({"momentum": "0.9"}, "momentum = '0.9' must be a number in [0, 1)"),
    ({"fedprox_mu": float("inf")}, "fedprox_mu = inf must be a number >= 0 or null"),
    ({"site_epochs": {"hungary": True}}, "site_epochs['hungary']: epochs = True must be an integer in [1, 1000]"),
    ({"site_epochs": "hungary"}, "site_epochs = 'hungary' must map site names to epochs"),
    ({"dp_sgd": "on"}, "dp_sgd = 'on' must map DP-SGD's settings to values, or be null"),
    ({"dp_sgd": {"target_epsilon": "8", "planned_rounds": 20}}, "dp_sgd.target_epsilon = '8' must be a number in (0, 100] or null"),
    ({"dp_sgd": {"target_epsilon": 1e300, "planned_rounds": 20}},  # Opacus' calibration to it does not finish
     "dp_sgd.target_epsilon = 1e+300 must be a number in (0, 100] or null"),
    ({"dp_sgd": {"noise_multiplier": 1.0, "delta": "1e-3"}}, "dp_sgd.delta = '1e-3' must be a number in (0, 1)"),
])
def test_a_value_of_the_wrong_type_or_range_is_named_with_the_value(args, message):
    with pytest.raises(ValueError) as e:
        LocalTrainingSettings.from_args(args)

    assert str(e.value) == message


def test_the_optimiser_settings_alone_fail_with_a_type_error_that_names_nothing():
    """What a site died of before: TrainConfig compares before it checks the type."""
    from consortium.learning.loop import TrainConfig

    with pytest.raises(TypeError, match="'>' not supported"):
        TrainConfig(lr="fast")
    with pytest.raises(ValueError, match="lr = 'fast'"):
        LocalTrainingSettings(lr="fast")


def test_arguments_that_are_not_an_object_are_refused():
    with pytest.raises(ValueError, match=r"local-training arguments = \['lr'\] must map names to values"):
        LocalTrainingSettings.from_args(["lr"])


def test_the_site_s_executor_refuses_the_value_when_it_is_built():
    from consortium.flare.executors.tabular import TabularExecutor

    with pytest.raises(ValueError, match=r"^lr = 'fast' must be a positive number$"):
        TabularExecutor(lr="fast")
    assert TabularExecutor(lr=0.1).settings.lr == 0.1


def test_a_number_a_float_cannot_hold_is_refused():
    with pytest.raises(ValueError, match=r"lr = 10000000000000000000000000000000 must be a positive number"):
        LocalTrainingSettings(lr=10**31)
    assert LocalTrainingSettings(lr=1e31).lr == 1e31
