"""The typed spec of every component the shipped jobs name (and the consortium's drill and rollback
arguments): each argument with its type and range, by class path.

Where a component is built from a typed config, its specs come from that config's fields, so they
cannot drift: the executors' training arguments are
:class:`~consortium.training_settings.LocalTrainingSettings`' fields with its own rules
(:data:`~consortium.training_settings.SCALAR_RULES`), ``dp_sgd`` is
:class:`~consortium.privacy.dp_sgd.DPSGDConfig`, the DP filter
:class:`~consortium.privacy.update_privacy.UpdatePrivacyPolicy`, the aggregator
:class:`~consortium.aggregation.config.AggregatorConfig`; building a spec fails when a field
has no rule. ``tests/cli/test_job_values.py`` checks every spec against its class's constructor.

Bounds: rounds at most :data:`~consortium.training_settings.MAX_ROUNDS` (the recipes' JobConfig
has the same bound); seconds at most :data:`MAX_SECONDS`; polling periods at most
:data:`MAX_POLL_S`; epsilons at most :data:`~consortium.training_settings.MAX_EPSILON`.
Arguments that would let a job defeat a site's protection are refused outright: a fixed DP
``noise_seed`` (predictable noise), a persistor checkpoint read from the server's file system or
un-pickled whole (``source_ckpt_file_full_name``, ``load_weights_only``), a DP ledger outside the
site's workspace (a fresh ledger is a fresh budget).
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from consortium.aggregation.config import AggregatorConfig
from consortium.aggregation.fednova import TauEff
from consortium.aggregation.robust import ROBUST_RULES, make_robust_rule
from consortium.jobs.rules import (
    Check,
    Context,
    Spec,
    boolean,
    file_name,
    integer,
    list_of,
    non_negative,
    null,
    one_of,
    optional,
    positive,
    reference,
    relative_path,
    rule,
    sha256,
    site,
    site_count,
    site_map,
    strings,
    text,
    typed,
)
from consortium.operations.drills import FAULTS
from consortium.privacy.accounting import ACCOUNTANTS
from consortium.privacy.dp_sgd import DPSGDConfig
from consortium.privacy.gaussian import ADJACENCIES
from consortium.privacy.update_privacy import UpdatePrivacyPolicy
from consortium.training_settings import (
    DP_SGD_TYPES,
    EPOCHS_RULE,
    MAX_EPOCHS,
    MAX_EPSILON,
    MAX_ROUNDS,
    SCALAR_RULES,
    LocalTrainingSettings,
    is_number,
)

MAX_SECONDS = 7 * 24 * 3600  # a timeout or wait of more than a week is a typo
MAX_POLL_S = 60.0  # polling periods (FLARE's defaults are 0.5 to 2 s)
MAX_SITES = 10_000
FLARE = "nvflare.app_common"

rounds = integer(1, MAX_ROUNDS)
rounds_or_0 = integer(0, MAX_ROUNDS)
seconds, seconds_or_0 = positive(MAX_SECONDS), non_negative(MAX_SECONDS)
poll = positive(MAX_POLL_S)
positive_number = rule(lambda v: is_number(v) and v > 0, "must be a positive number")
algorithm = one_of(("fedavg", "fednova"))
tau_eff = one_of(tuple(t.value for t in TauEff))
epsilon = rule(lambda v: is_number(v) and 0 < v <= MAX_EPSILON, f"must be a number in (0, {MAX_EPSILON:g}]")
seed = optional(integer(-(2**63), 2**63 - 1))


def from_fields(config: type, rules: dict[str, Check], name: str | None = None, **spec) -> Spec:
    """A spec with one rule per field of the dataclass ``config`` (KeyError naming a field without
    one, or a rule for no field), requiring the fields without a default."""
    names = [f.name for f in fields(config)]
    if set(names) != set(rules):
        raise KeyError(f"{config.__name__}: fields {sorted(set(names) - set(rules))} have no rule, rules "
                       f"{sorted(set(rules) - set(names))} no field")
    requires = frozenset(f.name for f in fields(config) if f.default is MISSING and f.default_factory is MISSING)
    return Spec(name or config.__name__, rules, requires=requires, **spec)


DP_SGD = from_fields(DPSGDConfig, {**{k: rule(*r) for k, r in DP_SGD_TYPES.items()}, "accountant": one_of(ACCOUNTANTS),
                                   "planned_rounds": optional(rounds)},
                     "dp_sgd", combined=(typed(DPSGDConfig.from_args, "DP-SGD"),))
_TRAINING_RULES = {k: rule(*r) for k, r in SCALAR_RULES.items()} | {"site_epochs": site_map(rule(*EPOCHS_RULE)),
                                                                      "dp_sgd": optional(DP_SGD)}
TRAINING = from_fields(LocalTrainingSettings, _TRAINING_RULES, "local training")
train_settings = typed(LocalTrainingSettings.from_args, "local training", TRAINING.args)

LOGISTIC = Spec("LogisticRegression", {"in_features": integer(1, 1_000_000), "init_seed": seed})
UNET = Spec("SegmentationUNet", {"dims": one_of((2, 3)), "channels": list_of(integer(1, 4096), 2),
                                 "num_res_units": integer(0, 16), "init_seed": seed})
MODELS = {"consortium.learning.tabular.LogisticRegression": LOGISTIC,
          "consortium.learning.segmentation.SegmentationUNet": UNET}


def model(value, where: str, ctx: Context) -> None:
    """``{"path": ..., "args": {...}}``, the args checked when the path is a known model."""
    if not isinstance(value, dict) or set(value) - {"path", "args"} or not isinstance(value.get("path"), str):
        ctx.fail(where, value, 'must be {"path": a model class, "args": {...}}')
    args = value.get("args", {})
    if not isinstance(args, dict):
        ctx.fail(f"{where}.args", args, "must be a JSON object of the model's arguments")
    if value["path"] in MODELS:
        MODELS[value["path"]].check(args, f"{where}.args", ctx)


def _standardisation(value, where: str, ctx: Context) -> None:
    numbers = list_of(rule(is_number, "must be a number"), 1)
    Spec("standardisation", {"mean": numbers, "std": list_of(positive_number, 1)},
         requires=frozenset({"mean", "std"}))(value, where, ctx)
    if len(value["mean"]) != len(value["std"]):
        ctx.fail(f"{where}.std", value["std"], f"must have as many entries as mean ({len(value['mean'])})")


def _tabular_model(args: dict, where: str, ctx: Context) -> None:
    path = args.get("model_path", "consortium.learning.tabular.LogisticRegression")
    if path in MODELS:
        MODELS[path].check(args.get("model_args") or {}, f"{where}.model_args", ctx)


def _no_personalised_dp(args: dict, where: str, ctx: Context) -> None:
    if args.get("personalise_epochs") and args.get("dp_sgd") is not None:
        ctx.fail(f"{where}.personalise_epochs", args["personalise_epochs"], "must be 0 with dp_sgd: the fine-tuning "
                                                                           "is not private")


def _retries_need_a_timeout(args: dict, where: str, ctx: Context) -> None:
    if args.get("max_round_retries") and not args.get("train_timeout"):
        ctx.fail(f"{where}.max_round_retries", args["max_round_retries"], "needs train_timeout > 0 (a retry sent to a "
                                                                          "dead site would wait for ever)")


def _resume_pair(args: dict, where: str, ctx: Context) -> None:
    if (args.get("resume_from") is None) != (args.get("resume_sha256") is None):
        ctx.error(f"field {where}: resume_from and resume_sha256 go together, got {args.get('resume_from')!r} and "
                  f"{args.get('resume_sha256')!r}")


def _robust_rule_fits(args: dict, where: str, ctx: Context) -> None:
    """A robust rule's conditions (Krum's 2f + 3 sites, the trimmed mean's 2 trim + 1) against the
    consortium when the job does not give ``sites``."""
    sites = args.get("sites", len(ctx.sites) if ctx.sites is not None else None)
    if args.get("rule", "mean") in ROBUST_RULES and sites is not None:
        try:
            make_robust_rule(args["rule"], args.get("trim", 1), args.get("krum_f", 1), sites)
        except ValueError as e:
            ctx.fail(f"{where}.rule", args["rule"], f"does not fit {sites} sites: {e}")


RESUME = {"resume_from": optional(relative_path), "resume_sha256": optional(sha256)}
AGGREGATOR_RULES = {"algorithm": algorithm, "tau_eff": tau_eff, "server_momentum": rule(*SCALAR_RULES["momentum"]),
                    "min_accepted": site_count, "max_update_norm": optional(positive_number),
                    "rule": one_of(("mean", *ROBUST_RULES)), "trim": integer(0, MAX_SITES), "krum_f": integer(0, MAX_SITES),
                    "sites": optional(site_count), "alert_threshold": optional(positive_number), "exclude_alerted": boolean}
_AGGREGATOR = from_fields(AggregatorConfig, AGGREGATOR_RULES, "RoundAggregator")
PRIVACY = from_fields(UpdatePrivacyPolicy, {
    "clip_norm": positive_number, "site_epsilon_budget": epsilon, "noise_multiplier": optional(positive_number),
    "target_epsilon": optional(epsilon), "planned_rounds": optional(rounds), "job_epsilon_budget": optional(epsilon),
    "delta": rule(*DP_SGD_TYPES["delta"]),
    "accountant": one_of(ACCOUNTANTS), "adjacency": one_of(ADJACENCIES), "ledger_path": relative_path,
    "count_step": integer(1, 1_000_000),
    "noise_seed": null("a seed in the job makes the site's noise predictable, which protects nothing")},
    "GaussianUpdatePrivacy", combined=(typed(lambda a: UpdatePrivacyPolicy(**a), "update privacy"),))

SAG = {"min_clients": site_count, "num_rounds": rounds, "start_round": rounds_or_0,
       "wait_time_after_min_received": seconds_or_0, "aggregator_id": reference, "persistor_id": reference,
       "shareable_generator_id": reference, "train_task_name": text, "train_timeout": seconds_or_0,
       "ignore_result_error": optional(boolean), "allow_empty_global_weights": boolean, "task_check_period": poll,
       "persist_every_n_rounds": rounds_or_0, "snapshot_every_n_rounds": rounds_or_0, "memory_gc_rounds": rounds_or_0,
       "enable_tensor_disk_offload": boolean, "max_round_retries": integer(0, 100)}
CROSS_SITE = {"task_check_period": poll, "cross_val_dir": relative_path, "submit_model_timeout": seconds,
              "validation_timeout": seconds, "model_locator_id": reference,
              "formatter_id": optional(rule(lambda v: v == "", "must be empty (no formatter)")),
              "submit_model_task_name": text, "validation_task_name": text, "cleanup_models": boolean,
              "participating_clients": optional(list_of(site, 1)), "wait_for_clients_timeout": seconds}
PERSISTOR = {"exclude_vars": optional(text), "model": model, "global_model_file_name": file_name,
             "best_global_model_file_name": file_name,
             "source_ckpt_file_full_name": null("a job may not load a checkpoint from the server's file system "
                                                "(use resume_from, a registry file inside the job)"),
             "filter_id": optional(reference),
             "load_weights_only": rule(lambda v: v is True, "must be true: a whole pickle can run code"),
             "allow_numpy_conversion": boolean, "load_device": optional(one_of(("cpu", "cuda"))),
             **RESUME, "resume_source": optional(text)}
TABULAR = {"model_path": text, "model_args": rule(lambda v: isinstance(v, dict), "must be a JSON object"),
           "centre": optional(text), "data_path": optional(text), "standardisation": optional(_standardisation),
           **TRAINING.args}
SEGMENTATION = {"model_args": UNET, "data_dir": text,
                "test_fraction": rule(lambda v: is_number(v) and 0 < v < 1, "must be a number in (0, 1)"),
                "train_local_only": boolean, "log_writer_id": optional(reference),
                "personalise_epochs": integer(0, MAX_EPOCHS), **TRAINING.args}


def _spec(name: str, args: dict[str, Check], requires=(), combined=()) -> Spec:
    return Spec(name, args, frozenset(requires), tuple(combined))


SPECS: dict[str, Spec] = {
    # server
    "consortium.flare.model_registry.ResumablePTPersistor": _spec("ResumablePTPersistor", PERSISTOR, ["model"], [_resume_pair]),
    "consortium.flare.aggregators.round.RoundAggregator": _spec("RoundAggregator", {**_AGGREGATOR.args, **RESUME}, (),
                                                       [typed(lambda a: AggregatorConfig(**a).build(), "aggregator",
                                                              _AGGREGATOR.args), _robust_rule_fits, _resume_pair]),
    "consortium.flare.listeners.progress_writer.RoundProgressWriter": _spec("RoundProgressWriter", {}),
    "consortium.flare.model_registry.ModelRegistryWriter": _spec("ModelRegistryWriter", {"aggregator_id": reference}),
    "consortium.flare.listeners.metrics_exporter.RoundMetricsListener": _spec("RoundMetricsListener", {
        "port": integer(1, 65535), "host": text, "final_scrape_wait": seconds_or_0}),
    "consortium.flare.workflows.scatter.ScatterAndGather": _spec("ScatterAndGather", SAG, (), [_retries_need_a_timeout]),
    "consortium.flare.workflows.scatter.CrossSiteModelEval": _spec("CrossSiteModelEval", CROSS_SITE),
    "consortium.flare.workflows.standardisation.FederatedStandardisation": _spec("FederatedStandardisation", {
        "min_clients": site_count, "timeout": seconds, "task_check_period": poll,
        "wait_time_after_min_received": seconds_or_0}),
    "consortium.flare.he.server.EncryptedRoundPersistor": _spec("EncryptedRoundPersistor", {"model": model}, ["model"]),
    "consortium.flare.he.server.EncryptedRoundShareableGenerator": _spec("EncryptedRoundShareableGenerator", {}),
    "consortium.flare.he.server.EncryptedRoundAggregator": _spec("EncryptedRoundAggregator", {
        "algorithm": algorithm, "tau_eff": tau_eff, "min_accepted": site_count}),
    "consortium.flare.he.server.HEGlobalEvaluation": _spec("HEGlobalEvaluation", {
        "shareable_generator_id": reference, "task_name": text, "timeout": seconds, "task_check_period": poll}),
    f"{FLARE}.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator":
        _spec("FullModelShareableGenerator", {}),
    f"{FLARE}.widgets.validation_json_generator.ValidationJsonGenerator": _spec("ValidationJsonGenerator", {
        "results_dir": relative_path, "json_file_name": file_name}),
    "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator": _spec("PTFileModelLocator", {
        "pt_persistor_id": reference}, ["pt_persistor_id"]),
    "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver": _spec("TBAnalyticsReceiver", {
        "tb_folder": relative_path, "events": optional(strings)}),
    # sites
    "consortium.flare.executors.tabular.TabularExecutor": _spec("TabularExecutor", TABULAR, (), [_tabular_model, train_settings]),
    "consortium.flare.executors.segmentation.SegmentationExecutor": _spec("SegmentationExecutor", SEGMENTATION, (),
                                                                 [_no_personalised_dp, train_settings]),
    "consortium.flare.filters.dp.GaussianUpdatePrivacy": PRIVACY,
    "consortium.flare.he.site.HEEncryptResult": _spec("HEEncryptResult", {
        "algorithm": algorithm, "tau_eff": tau_eff, "max_update_norm": optional(positive_number),
        "encrypt_workers": integer(1, 256)}),
    "consortium.flare.he.site.HEDecryptTaskData": _spec("HEDecryptTaskData", {}),
    "consortium.flare.filters.fault_drill.FaultDrill": _spec("FaultDrill", {"faults": site_map(list_of(one_of(FAULTS), 1))}, ["faults"]),
    "nvflare.app_opt.tracking.tb.tb_writer.TBWriter": _spec("TBWriter", {"event_type": text}),
    f"{FLARE}.widgets.convert_to_fed_event.ConvertToFedEvent": _spec("ConvertToFedEvent", {
        "events_to_convert": strings, "fed_event_prefix": text}, ["events_to_convert"]),
}

# the top-level sections of config_fed_server.json / config_fed_client.json (other keys: FLARE's)
TOP_LEVEL: dict[str, Check] = {
    "format_version": one_of((2,)),
    "np_download_chunk_size": integer(0, 2**31),
    "server": Spec("server", {"heart_beat_timeout": seconds, "task_request_interval": poll}, closed=False),
    "client": Spec("client", {"default_task_fetch_interval": poll}, closed=False),
}
