"""What encryption costs: plaintext vs NVFlare's HE (``nvflare.app_opt.he``) vs ours, one run, same
models, same machine.

Per model size (MONAI UNets of ~41k, ~1.6M and ~6.5M parameters; four sites with the heart-disease
centres' sample counts): bytes of one site's message / its fp32 bytes, one site's encryption and
decryption time, and the server's aggregation time for four sites (receiving included: NVFlare
rebuilds every vector with the context that travels beside it, ours loads the ciphertexts under
the server's public context). NVFlare's path is its own code: ``HEModelEncryptor.encryption`` with
the context its ``HEBuilder`` makes (N 8192, [60, 40, 40], 2^40), its FOBS decomposer for the
bytes, ``HEInTimeAccumulateWeightedAggregator`` for the server.

Then the round time of ``seg_fedavg`` and ``seg_fedavg_he`` in a real POC (median of rounds 1..),
each job run ``POC_REPEATS`` times, interleaved, with ``POC_EPOCHS`` local epochs pinned, beside the
slowest site's training time per round (equal work: the ratio compares what HE adds, not training).

    .venv/bin/python benchmarks/he_cost.py [--no-poc]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tenseal as ts
from common import executor_args, job_variant, size, workflow_args, write_table
from nvflare.apis.dxo import DXO, DataKind, MetaKey
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_opt.he.decomposers import CKKSVectorDecomposer
from nvflare.app_opt.he.intime_accumulate_model_aggregator import HEInTimeAccumulateWeightedAggregator
from nvflare.app_opt.he.model_encryptor import HEModelEncryptor

from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import FedAvgWeighting, PreWeighted
from consortium.crypto.ckks import CKKSParameters, key_id, make_context, public_copy
from consortium.crypto.packed import CiphertextSum, decrypt_sum, encrypt_update, layout_of, load_vectors, verify_message
from consortium.crypto.pool import EncryptionPool
from consortium.learning.loop import get_weights
from consortium.learning.segmentation import build_unet
from consortium.protocol.site_result import SiteResult

MODELS = {"UNet (8,16,32,64)": ((8, 16, 32, 64), 0), "UNet (16..256), 2 res units": ((16, 32, 64, 128, 256), 2),
          "UNet (32..512), 2 res units": ((32, 64, 128, 256, 512), 2)}
MODELS = size(MODELS, dict(list(MODELS.items())[:1]))
N_SAMPLES = (199, 172, 30, 85)
POC_ROUNDS = size(8, 3)
POC_EPOCHS = size(2, 1)  # pinned, so that a change of the jobs' local epochs does not move the round-time comparison
POC_REPEATS = size(3, 1)  # each job runs this many times, interleaved, for the run-to-run spread


def site_updates(model: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{k: (rng.standard_normal(v.shape) * 0.01).astype(np.float32) for k, v in model.items()} for _ in N_SAMPLES]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def plaintext(updates) -> dict:
    def aggregate():
        rnd = RoundAggregation(FedAvgWeighting())
        rnd.start(0, updates[0])
        for i, (u, n) in enumerate(zip(updates, N_SAMPLES, strict=True)):
            rnd.offer(f"s{i}", u, SiteResult(n_samples=n))
        return rnd.close()

    _, agg = timed(aggregate)
    return {"bytes": sum(v.nbytes for v in updates[0].values()), "enc": 0.0, "dec": 0.0, "agg": agg}


def nvflare_he(updates) -> dict:
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40])
    ctx.global_scale = 2**40
    fl_ctx = FLContext()
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 0, private=True, sticky=False)
    encryptor = HEModelEncryptor()
    encryptor.tenseal_context, encryptor.encrypt_layers = ctx, [True]
    decomposer = CKKSVectorDecomposer()
    messages, enc_times = [], []
    for u, n in zip(updates, N_SAMPLES, strict=True):
        encryptor.aggregation_weight, encryptor.n_iter = 1.0, n  # NVFlare multiplies the weight in before encrypting
        (params, _), t = timed(lambda u=u: encryptor.encryption({k: v.copy() for k, v in u.items()}, fl_ctx))
        enc_times.append(t)
        messages.append({k: decomposer.decompose(v) for k, v in params.items()})  # what FOBS sends: vector + context
    nbytes = sum(len(a) + len(b) for a, b in messages[0].values())

    def aggregate():
        agg = HEInTimeAccumulateWeightedAggregator(weigh_by_local_iter=False)
        agg.handle_event(EventType.START_RUN, fl_ctx)
        for i, (msg, n) in enumerate(zip(messages, N_SAMPLES, strict=True)):
            data = {k: decomposer.recompose(v) for k, v in msg.items()}  # receiving: FOBS rebuilds each vector
            s = DXO(DataKind.WEIGHT_DIFF, data, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: n}).to_shareable()
            s.set_peer_props({ReservedKey.IDENTITY_NAME: f"s{i}"})
            s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 0)
            if not agg.accept(s, fl_ctx):
                raise RuntimeError("NVFlare's HE aggregator refused a result")
        return agg.aggregate(fl_ctx)

    result, agg_time = timed(aggregate)
    from nvflare.apis.dxo import from_shareable

    sent = {k: decomposer.decompose(v) for k, v in from_shareable(result).data.items()}  # the sum goes back to the sites
    secret = ctx.secret_key()
    _, dec = timed(lambda: {k: np.asarray(decomposer.recompose(v).decrypt(secret_key=secret)) for k, v in sent.items()})
    return {"bytes": nbytes, "enc": float(np.median(enc_times)), "dec": dec, "agg": agg_time}


def ours(updates, symmetric: bool = True, workers: int = 1) -> dict:
    ctx = make_context(CKKSParameters(symmetric=symmetric))
    server = public_copy(ctx)
    results = [SiteResult(n_samples=n) for n in N_SAMPLES]
    weighting = PreWeighted(FedAvgWeighting())
    messages, enc_times = [], []
    pool = EncryptionPool(ctx, workers) if workers > 1 else None
    if pool is not None:
        pool.encrypt([np.zeros(4, np.float32)] * workers * 2)  # the workers start once per job, not per round
    try:
        for u, r in zip(updates, results, strict=True):
            msg, t = timed(lambda u=u, r=r: encrypt_update(ctx, u, weighting.inner.coefficient(r), pool))
            messages.append(msg)
            enc_times.append(t)
    finally:
        if pool is not None:
            pool.close()
    nbytes = sum(map(len, messages[0].ciphertexts))

    def aggregate():
        rnd = RoundAggregation(weighting, checks=(), rule=WeightedSum(CiphertextSum()), alert_threshold=None)
        rnd.start(0, None)
        for i, (msg, r) in enumerate(zip(messages, results, strict=True)):
            verify_message(msg, key_id(server))
            rnd.offer(f"s{i}", load_vectors(server, msg.ciphertexts), r)
        return rnd.close()

    (total, _), agg_time = timed(aggregate)
    cts = [v.serialize() for v in total.ciphertexts]
    _, dec = timed(lambda: decrypt_sum(ctx, cts, layout_of(updates[0]), total.scale, weighting.canary(results)))
    return {"bytes": nbytes, "enc": float(np.median(enc_times)), "dec": dec, "agg": agg_time}


def _nvflare_he_job(config: dict) -> None:
    """seg_fedavg's server with FLARE's own HE components (as FLARE's FedAvgRecipeWithHE sets them)."""
    model = config["components"][0]["args"]["model"]
    config["components"] = [
        {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
         "args": {"model": model, "filter_id": "model_serialize_filter"}},
        {"id": "model_serialize_filter", "path": "nvflare.app_opt.he.model_serialize_filter.HEModelSerializeFilter", "args": {}},
        {"id": "shareable_generator", "path": "nvflare.app_opt.he.model_shareable_generator.HEModelShareableGenerator", "args": {}},
        {"id": "aggregator", "path": "nvflare.app_opt.he.intime_accumulate_model_aggregator.HEInTimeAccumulateWeightedAggregator",
         "args": {"expected_data_kind": "WEIGHT_DIFF", "weigh_by_local_iter": False}}]
    config["workflows"] = [{"id": "scatter_and_gather", "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                            "args": {"min_clients": 4, "num_rounds": POC_ROUNDS, "wait_time_after_min_received": 0,
                                     "aggregator_id": "aggregator", "persistor_id": "persistor",
                                     "shareable_generator_id": "shareable_generator", "train_task_name": "train",
                                     "task_check_period": 0.05}}]


def _nvflare_he_sites(config: dict) -> None:
    """FLARE's decryptor (then the reshape our executor needs) and encryptor around our executor."""
    args = executor_args(config)
    args.update(train_local_only=False, personalise_epochs=0, epochs=POC_EPOCHS)
    model = {"model_path": args.get("model_path", "consortium.learning.segmentation.SegmentationUNet"),
             "model_args": args.get("model_args", {})}
    config["task_data_filters"] = [{"tasks": ["train"], "filters": [
        {"path": "nvflare.app_opt.he.model_decryptor.HEModelDecryptor", "args": {}},
        {"path": "consortium.flare.he.flare_he.ReshapeToModel", "args": model}]}]
    config["task_result_filters"] = [{"tasks": ["train"], "filters": [
        {"path": "nvflare.app_opt.he.model_encryptor.HEModelEncryptor", "args": {"weigh_by_local_iter": False}}]}]


# What FLARE's own HE job names beyond the consortium's closed allow-list: admitted only in the
# benchmark's own copy of the site policies (extra_allowed), never in the shipped ones.
NVFLARE_HE_CLASSES = [
    "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
    "nvflare.app_opt.he.model_serialize_filter.HEModelSerializeFilter",
    "nvflare.app_opt.he.model_shareable_generator.HEModelShareableGenerator",
    "nvflare.app_opt.he.intime_accumulate_model_aggregator.HEInTimeAccumulateWeightedAggregator",
    "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
    "nvflare.app_opt.he.model_decryptor.HEModelDecryptor",
    "nvflare.app_opt.he.model_encryptor.HEModelEncryptor",
    "consortium.flare.he.flare_he.ReshapeToModel",
]


def _nvflare_he_project(base, folder: Path):
    """A copy of the consortium's project provisioned with FLARE's HEBuilder (its aggregator
    multiplies by weights, which needs the [60, 40, 40] chain) and site policies that admit
    :data:`NVFLARE_HE_CLASSES` as ``extra_allowed``."""
    import copy
    import shutil

    import yaml

    from consortium.provisioning.project import POLICIES_DIR, Project

    config = copy.deepcopy(base.config)
    config["builders"] = [b if not b["path"].endswith("HEKeysBuilder") else
                          {"path": "nvflare.lighter.impl.he.HEBuilder",
                           "args": {"poly_modulus_degree": 8192, "coeff_mod_bit_sizes": [60, 40, 40], "scale_bits": 40}}
                          for b in config["builders"]]
    shutil.copytree(base.policies_dir, folder / POLICIES_DIR)
    allow_file = folder / POLICIES_DIR / "class_allow_list.json"
    allow = json.loads(allow_file.read_text())
    allow["extra_allowed"] = [*allow.get("extra_allowed", []), *NVFLARE_HE_CLASSES]
    allow_file.write_text(json.dumps(allow, indent=2) + "\n")
    (folder / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.load(folder / "project.yml")


def _round_starts(result: Path) -> list[float]:
    """The server's "Round N started" times in a downloaded result's logs (every workflow logs them)."""
    import datetime as dt
    import re

    times = []
    for log in result.rglob("log.txt"):
        for line in log.read_text(errors="replace").splitlines():
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) .*Round (\d+) started", line)
            if m:
                times.append(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return sorted(times)


def poc_round_times() -> dict[str, dict]:
    """Median round time (between the server's round starts) in a real POC of seg_fedavg, ours
    under HE, and FLARE's own HE (a second POC provisioned with FLARE's HEBuilder: its aggregator
    multiplies by weights, which needs the [60, 40, 40] chain; our kits carry [60, 40])."""
    from round_overhead import _free_port

    from consortium.defaults import DEFAULT_PROJECT
    from consortium.jobs.submit import submit_and_follow
    from consortium.poc import lifecycle as poc
    from consortium.provisioning.project import Project

    def timings(result: Path) -> dict:
        rows = [json.loads(x) for x in (result / "workspace" / "progress.jsonl").read_text().splitlines() if x.strip()] \
            if (result / "workspace" / "progress.jsonl").is_file() else []
        out = {"round": float(np.median(np.diff(_round_starts(result))))}
        if rows and all(r.get("max_train_seconds") is not None for r in rows[1:]):
            out["train"] = float(np.median([r["max_train_seconds"] for r in rows[1:]]))
        if rows:
            out["site_he"] = float(np.median([np.mean(list(r["site_he_seconds"].values())) for r in rows[1:]])) \
                if rows[-1].get("site_he_seconds") else 0.0
            out["server"] = float(np.median([r["combine_seconds"] + r["load_seconds"] for r in rows[1:]]))
        return out

    def run_on(project: Project, jobs: dict[str, Path], tmp: Path) -> dict[str, list[dict]]:
        """Each job POC_REPEATS times, interleaved (a, b, a, b, ...), in one POC."""
        ws = tmp / f"poc_{len(list(tmp.glob('poc_*')))}"
        state = poc.up(project, ws, port=_free_port(), echo=lambda _: None)
        out = {name: [] for name in jobs}
        try:
            for i in range(POC_REPEATS):
                for name, job in jobs.items():
                    out[name].append(timings(submit_and_follow(state, job, tmp / f"results_{i}", echo=lambda _: None)))
                    print(f"{name} run {i}: {out[name][-1]}", flush=True)
            return out
        finally:
            poc.down(ws, echo=lambda _: None)
            poc.stop_processes(state, grace=5)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def rounds(c):
            workflow_args(c, "scatter_and_gather")["num_rounds"] = POC_ROUNDS

        def same_work(c):  # the plaintext job also trains a local-only baseline for cross-site evaluation; HE does not
            executor_args(c).update(train_local_only=False, personalise_epochs=0, epochs=POC_EPOCHS)

        jobs = {name: job_variant(name, tmp / name, rounds, same_work) for name in ("seg_fedavg", "seg_fedavg_he")}
        times = run_on(Project.load(DEFAULT_PROJECT), jobs, tmp)
        flare_he = job_variant("seg_fedavg", tmp / "seg_fedavg_flare_he", _nvflare_he_job, _nvflare_he_sites)
        times |= run_on(_nvflare_he_project(Project.load(DEFAULT_PROJECT), tmp / "nvflare_he_project"),
                        {"seg_fedavg_flare_he": flare_he}, tmp)
        return times


def poc_lines(t: dict[str, list[dict]]) -> list[str]:
    """The POC round times: per job the median over its runs and the range, and the ratios to the
    plaintext job (median of the runs' ratios: run i of each job against run i of the plaintext job)."""
    def spread(values: list[float], fmt: str = ".2f") -> str:
        return f"{np.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    def field(job: str, key: str) -> list[float]:
        return [run[key] for run in t[job]]

    plain = field("seg_fedavg", "round")
    ratio = {job: [a / b for a, b in zip(field(job, "round"), plain, strict=True)] for job in ("seg_fedavg_he", "seg_fedavg_flare_he")}
    labels = {"seg_fedavg": "plaintext `seg_fedavg`", "seg_fedavg_he": "ours under HE `seg_fedavg_he`",
              "seg_fedavg_flare_he": "NVFlare's HE (its encryptor, decryptor, shareable generator and aggregator, HEBuilder's "
                                     "context, in a POC of its own)"}
    rows = ["| job | round s | / plaintext | slowest site's training s | a site's HE s | server read + combine s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for job, label in labels.items():
        cells = [spread(field(job, "round")), spread(ratio[job]) + "x" if job in ratio else "1x"]
        cells += [spread(field(job, k), ".3f") if all(k in run for run in t[job]) else "n/a (FLARE's aggregator records none)"
                  for k in ("train", "site_he", "server")]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    ours = float(np.median(ratio["seg_fedavg_he"]))
    return ["", f"Round time in a real POC (4 sites, 40.7k-parameter UNet, the same executor and training at {POC_EPOCHS} "
                f"local epochs, no local-only baseline or personalisation; per run the median interval between the "
                f"server's round starts over {POC_ROUNDS} rounds; each job run {POC_REPEATS} times, interleaved: median "
                "over the runs (lowest–highest)). Our HE round / plaintext round: "
                f"**{ours:.2f}x** (goal <= 1.3x).", "", *rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-poc", action="store_true", help="skip the POC round-time comparison")
    args = ap.parse_args()
    rows = []
    for label, (channels, res) in MODELS.items():
        model = get_weights(build_unet(2, channels, res))
        n = sum(v.size for v in model.values())
        updates = site_updates(model)
        fp32 = n * 4
        m = {"plaintext": plaintext(updates), "NVFlare HE": nvflare_he(updates), "ours, public-key encryption": ours(updates, False),
             "ours": ours(updates), "ours, 2 encryption processes": ours(updates, workers=2)}
        for name, r in m.items():
            rows.append(f"| {label} | {n / 1e6:.3f}M | {name} | {r['bytes'] / fp32:.1f}x | {r['enc']:.3f} | {r['dec']:.3f} "
                        f"| {r['agg']:.3f} |")
        speed = m["NVFlare HE"]["agg"] / m["ours"]["agg"]
        rows.append(f"| | | **NVFlare / ours** | **{m['NVFlare HE']['bytes'] / m['ours']['bytes']:.1f}x bytes** | "
                    f"{m['NVFlare HE']['enc'] / m['ours']['enc']:.1f}x | {m['NVFlare HE']['dec'] / m['ours']['dec']:.1f}x | "
                    f"**{speed:.1f}x** |")
        print(rows[-6:], flush=True)
    lines = [
        "# Encrypted aggregation: plaintext vs NVFlare's HE vs ours (one run, same machine)",
        "",
        "Bytes of one site's message / its fp32 bytes; seconds for one site to encrypt, one site to decrypt",
        "the round's sum, and the server to receive and aggregate four sites. NVFlare: its own",
        "HEModelEncryptor, FOBS decomposer and HEInTimeAccumulateWeightedAggregator with HEBuilder's",
        "context (N 8192, [60, 40, 40]); ours: consortium.crypto (N 8192, [60, 40], flat packing,",
        "no context in the message, the server only adds), with symmetric encryption under the sites'",
        "secret key (the default), with public-key encryption, and over a pool of 2 processes",
        "(consortium.crypto.pool, started before timing: once per job).",
        "",
        "| model | parameters | method | bytes / fp32 | encrypt s | decrypt s | server aggregate s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    if not args.no_poc:
        lines += poc_lines(poc_round_times())
    write_table("he_cost.md", lines)


if __name__ == "__main__":
    sys.exit(main())
