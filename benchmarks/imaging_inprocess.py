"""Federated segmentation in process: the sites' data from the POC scanner profiles, the training
the segmentation executor runs (``consortium.learning.segmentation``, same seeds per round and
site) and the aggregation the FLARE aggregator runs (``consortium.aggregation.round``), without
FLARE processes. Shared by benchmarks/imaging_selection.py, personalisation_selection.py and
fednova_imaging.py, with the personalisation-epochs rule the two selection scripts apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from common import JOBS, REPO, size

from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import make_weighting
from consortium.data.imaging import DEFAULT_TEST_FRACTION, generate_site, load_profiles, site_split, split_indices
from consortium.learning.fednova import local_normaliser
from consortium.learning.loop import get_weights, set_weights
from consortium.learning.segmentation import SegmentationUNet, dice_scores, personalised_dice, predict, train_segmentation
from consortium.protocol.site_result import SiteResult
from consortium.training_settings import LocalTrainingSettings

PROFILES = REPO / "poc_workspace" / "scanner_profiles.json"
VALIDATION_SEED = 31  # the inner split of a site's training images used to choose settings
NOT_TRAINING = ("model_args", "data_dir", "test_fraction", "train_local_only", "log_writer_id", "personalise_epochs")

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Site:
    train: Split
    test: Split  # the site's test split, or, for choosing settings, a validation split of its training images


def site_data(validation: bool = False, size: int | None = None) -> dict[str, Site]:
    """Every POC site's images split as the executor splits them; with ``validation`` the test
    split is left out altogether and the training images are split again (train / validation).
    ``size``: another image size than the profiles' (same seeds and scanner shifts)."""
    sites = {}
    for name, profile in load_profiles(PROFILES).items():
        profile = replace(profile, size=size) if size is not None else profile
        train, test = site_split(*generate_site(profile), DEFAULT_TEST_FRACTION)
        if validation:
            tr, va = split_indices(len(train[0]), DEFAULT_TEST_FRACTION, VALIDATION_SEED)
            train, test = (train[0][tr], train[1][tr]), (train[0][va], train[1][va])
        sites[name] = Site(train, test)
    return sites


def job_settings(job: str = "seg_fedavg") -> tuple[LocalTrainingSettings, int, dict]:
    """(local-training settings, rounds, model arguments) of a segmentation job."""
    config = JOBS / job / "app" / "config"
    client = json.loads((config / "config_fed_client.json").read_text())["executors"][0]["executor"]["args"]
    server = json.loads((config / "config_fed_server.json").read_text())
    rounds = next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"]
    training = {k: v for k, v in client.items() if k not in NOT_TRAINING}
    return LocalTrainingSettings.from_args(training), size(rounds, 1), client.get("model_args") or {}


def dice_by_site(model: torch.nn.Module, sites: dict[str, Site]) -> dict[str, float]:
    return {name: float(dice_scores(predict(model, s.test[0]), s.test[1]).mean()) for name, s in sites.items()}


def federate(sites: dict[str, Site], settings: LocalTrainingSettings, rounds: int, algorithm: str, seed: int,
             model_args: dict, on_round: Callable[[int, torch.nn.Module], None] | None = None,
             on_update: Callable[[int, str, dict, SiteResult], None] | None = None) -> torch.nn.Module:
    """The final global model of ``rounds`` rounds of ``algorithm`` ('fedavg' or 'fednova'; FedProx
    is fedavg with ``settings.fedprox_mu``), initialised and shuffled from ``seed`` as the job's
    executor with ``seed`` and ``init_seed`` set to it. ``on_round(r, model)`` sees the model each
    round receives (r = rounds: the final one); ``on_update(r, site, update, result)`` each site's
    update and result as the aggregator receives them."""
    settings = replace(settings, seed=seed)
    model = SegmentationUNet(**(model_args | {"init_seed": seed}))
    aggregation = RoundAggregation(make_weighting(algorithm), min_accepted=len(sites), alert_threshold=None)
    for r in range(rounds):
        if on_round is not None:
            on_round(r, model)
        start = get_weights(model)
        aggregation.start(r, start)
        for name, site in sites.items():
            local = SegmentationUNet(**model_args)
            set_weights(local, start)
            config = settings.train_config(name)
            trained = train_segmentation(local, *site.train, config, seed=settings.round_seed(r, name),
                                         fedprox_mu=settings.fedprox_mu)
            try:
                a = local_normaliser(trained.steps, config.lr, config.momentum, settings.fedprox_mu or 0.0)
            except ValueError:
                a = None  # momentum with a proximal term: no normaliser (FedProx does not need one)
            update = {k: v - start[k] for k, v in get_weights(local).items()}
            result = SiteResult(n_samples=len(site.train[0]), local_steps=trained.steps, fednova_a=a)
            if on_update is not None:
                on_update(r, name, update, result)
            reason = aggregation.offer(name, update, result)
            if reason is not None:
                raise RuntimeError(reason)
        combined, _ = aggregation.close()
        set_weights(model, {k: start[k] + combined[k] for k in start})
    if on_round is not None:
        on_round(rounds, model)
    return model


def local_only(site_name: str, site: Site, settings: LocalTrainingSettings, rounds: int, seed: int,
               model_args: dict) -> torch.nn.Module:
    """The executor's local-only baseline: same initialisation, the site's own data, one call of
    local training per round with the round's seed + 7."""
    settings = replace(settings, seed=seed)
    model = SegmentationUNet(**(model_args | {"init_seed": seed}))
    config = settings.train_config(site_name)
    for r in range(rounds):
        train_segmentation(model, *site.train, config, seed=settings.round_seed(r, site_name) + 7)
    return model


def personalised_by_site(model: torch.nn.Module, sites: dict[str, Site], settings: LocalTrainingSettings, seed: int,
                         epochs: int) -> dict[str, float]:
    """Each site's Dice of ``model`` fine-tuned there for ``epochs`` epochs (the executor's
    personalisation, seeded as the job's executor with ``seed``)."""
    return {n: float(personalised_dice(model, s.train, s.test, replace(settings.train_config(n), epochs=epochs),
                                       seed=replace(settings, seed=seed).round_seed(-1, n)).mean())
            for n, s in sites.items()}


def site_mean(runs: list[dict[str, float]], site: str) -> float:
    """The mean over seeds of one site's score."""
    return float(np.mean([r[site] for r in runs]))


def fewest_meeting_local(personalised: dict[int, list[dict]], local: list[dict], sites: list[str]) -> tuple[int, dict[int, bool], str]:
    """The personalisation-epochs rule: the fewest epochs whose fine-tuned model scores at least the
    local-only model at every site (means over seeds); if none does, the highest mean over sites.
    Returns (chosen epochs, {epochs: meets local-only everywhere}, which of the two applied)."""
    beats = {k: all(site_mean(runs, n) >= site_mean(local, n) for n in sites) for k, runs in personalised.items()}
    if any(beats.values()):
        return min(k for k, ok in beats.items() if ok), beats, "the fewest meeting local-only at every site"
    best = max(personalised, key=lambda k: np.mean([site_mean(personalised[k], n) for n in sites]))
    return best, beats, "no value met local-only at every site: the best mean"
