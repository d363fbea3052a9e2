"""The contract between a site's executor and the server: task names and result metadata keys.

A site's training result carries its update (``w_local - w_global``, FLARE's WEIGHT_DIFF) and the
metadata below, so that aggregators, privacy and encryption filters can be layered around the
executors without changing them.
"""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """Task names the server sends to the sites."""

    TRAIN = "train"
    VALIDATE = "validate"
    SUBMIT_MODEL = "submit_model"
    FEATURE_STATS = "feature_stats"
    SET_STANDARDISATION = "set_standardisation"


class ResultMeta(StrEnum):
    """Metadata a site attaches to every training result (DXO meta)."""

    N_SAMPLES = "n_samples"  # local training examples n_k (FedAvg / FedNova weight p_k = n_k / sum n)
    LOCAL_STEPS = "local_steps"  # optimiser steps tau_k taken this round
    NORMALISER = "fednova_a"  # FedNova normaliser a_k of the local optimiser
    TRAIN_LOSS = "train_loss"  # mean training loss over the round's local steps
    TRAIN_SECONDS = "train_seconds"  # wall time of local training (for orchestration-overhead reports)
    # evaluation of the *received* global model on the site's local test split, before training
    VAL_METRIC = "val_metric"  # name of the per-example metric: "accuracy", "dice"
    VAL_N = "val_n"  # test examples
    VAL_SCORE_SUM = "val_score_sum"  # sum of the per-example metric (correct predictions, Dice)
    VAL_LOSS = "val_loss"
