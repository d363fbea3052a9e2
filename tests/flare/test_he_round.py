"""Encrypted rounds through the FLARE components, with real Shareables and contexts: the site
filters, the add-only aggregator and the shareable generator; what the server receives holds no
plaintext weights, and what does not belong is refused."""

from __future__ import annotations

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.weighting import FedNovaWeighting
from consortium.flare.aggregators.round import ROUND_RECORD_PROP
from consortium.flare.he import site as he_site
from consortium.flare.he.server import EncryptedRoundAggregator, EncryptedRoundShareableGenerator
from consortium.flare.he.site import CLIENT_CONTEXT, HE_KEYS_ENV, SERVER_CONTEXT, HEDecryptTaskData, HEEncryptResult, load_context
from consortium.protocol.site_result import SiteResult
from consortium.recipes.envs import simulator_he_keys

INITIAL = {"w": np.array([[0.5, -0.5, 0.0]], dtype=np.float32), "b": np.zeros(1, dtype=np.float32)}
SITES = {"a": SiteResult(n_samples=10, local_steps=2, fednova_a=2.0, train_loss=0.5),
         "b": SiteResult(n_samples=30, local_steps=9, fednova_a=9.0, train_loss=0.4)}


class _Engine:
    def __init__(self):
        self.events = []

    def fire_event(self, event_type, fl_ctx):
        self.events.append(event_type)


@pytest.fixture(autouse=True)
def fresh_sites():
    """Each test is its own job: the sites' model copies start empty."""
    he_site._MODELS.clear()
    yield
    for state in he_site._MODELS.values():
        state.close()  # a site's encryption workers end with its job
    he_site._MODELS.clear()


@pytest.fixture
def keys(tmp_path, monkeypatch):
    folder = simulator_he_keys(tmp_path / "keys")
    monkeypatch.setenv(HE_KEYS_ENV, str(folder))
    return folder


def ctx(site="server", job="job1", round_number=0):
    c = FLContext()
    c.set_prop(ReservedKey.IDENTITY_NAME, site, private=False, sticky=False)
    c.set_prop(ReservedKey.RUN_NUM, job, private=True, sticky=False)
    c.set_prop(ReservedKey.ENGINE, _Engine(), private=True, sticky=False)
    c.set_prop(AppConstants.CURRENT_ROUND, round_number, private=True, sticky=False)
    c.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(INITIAL, {}), private=True, sticky=False)
    return c


def update(seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape) * 0.1).astype(np.float32) for k, v in INITIAL.items()}


def site_result(site, u, round_number=0, job="job1", workers=1):
    """What the site's executor returns, through its HE result filter."""
    c = ctx(site, job)
    HEDecryptTaskData().process(DXO(DataKind.WEIGHTS, INITIAL).to_shareable(), c)  # round 0: the initial model
    s = DXO(DataKind.WEIGHT_DIFF, u, meta=SITES[site].to_meta()).to_shareable()
    out = HEEncryptResult(algorithm="fednova", encrypt_workers=workers).process(s, c)
    out.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    out.add_cookie(AppConstants.CONTRIBUTION_ROUND, round_number)
    return out


def test_one_encrypted_fednova_round_gives_the_plaintext_update_at_every_site(keys):
    ups = {"a": update(1), "b": update(2)}
    agg = EncryptedRoundAggregator(algorithm="fednova")
    server = ctx()
    agg.handle_event(EventType.START_RUN, server)
    received = {s: site_result(s, u, workers=2 if s == "b" else 1) for s, u in ups.items()}  # b encrypts over 2 processes
    assert he_site._MODELS[("job1", "b")].pool is not None and he_site._MODELS[("job1", "a")].pool is None
    for s, r in received.items():
        assert agg.accept(r, server), s
        assert "w" not in str(from_shareable(r).data.keys())  # only ciphertexts and their envelope travel
    learnable = EncryptedRoundShareableGenerator().shareable_to_learnable(agg.aggregate(server), server)
    record = server.get_prop(ROUND_RECORD_PROP)
    sizes = record["site_update_bytes"]  # telemetry: the ciphertext bytes received
    assert set(sizes) == {"a", "b"} and all(n > 100_000 for n in sizes.values())  # CKKS, not 4 float32 values
    assert set(record["site_he_seconds"]) == {"a", "b"} and all(t > 0 for t in record["site_he_seconds"].values())
    assert record["load_seconds"] > 0 and record["combine_seconds"] > 0  # HE's cost at the sites and the server

    for site in ups:  # each site decrypts the sum and applies it to its copy of the initial model
        task = EncryptedRoundShareableGenerator().learnable_to_shareable(learnable, server)  # each site gets its copy
        assert from_shareable(task).data_kind == DataKind.APP_DEFINED  # the server sends ciphertexts
        applied = from_shareable(HEDecryptTaskData().process(task, ctx(site))).data
        w = FedNovaWeighting()
        rule = WeightedSum()
        for s, u in ups.items():
            rule.add(u, w.coefficient(SITES[s]))
        expected = rule.result(w.scale(list(SITES.values())))
        for k in INITIAL:
            np.testing.assert_allclose(applied[k], INITIAL[k] + expected[k], atol=1e-6)


def test_a_plaintext_result_is_rejected_by_the_he_aggregator(keys):
    agg = EncryptedRoundAggregator()
    server = ctx()
    agg.handle_event(EventType.START_RUN, server)
    s = DXO(DataKind.WEIGHT_DIFF, update(1), meta=SITES["a"].to_meta()).to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: "a"})
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 0)

    assert not agg.accept(s, server)
    assert "is not encrypted" in agg.round.rejected["a"]


def test_a_site_refuses_to_release_a_plaintext_model(keys):
    c = ctx("a")
    HEDecryptTaskData().process(DXO(DataKind.WEIGHTS, INITIAL).to_shareable(), c)
    submitted = DXO(DataKind.WEIGHTS, INITIAL).to_shareable()  # what submit_model would send

    out = HEEncryptResult().process(submitted, c)

    assert out.get_return_code() == ReturnCode.EXECUTION_EXCEPTION and "DXO" not in out


def test_metrics_and_acknowledgements_pass(keys):
    metrics = DXO(DataKind.METRICS, {"accuracy": 0.8}).to_shareable()
    assert HEEncryptResult().process(metrics, ctx("a")) is metrics


def test_a_site_refuses_plaintext_weights_after_the_initial_model(keys):
    c = ctx("a")
    f = HEDecryptTaskData()
    f.process(DXO(DataKind.WEIGHTS, INITIAL).to_shareable(), c)
    with pytest.raises(ValueError, match="refusing plaintext"):
        f.process(DXO(DataKind.WEIGHTS, INITIAL).to_shareable(), c)


def test_a_server_holding_the_secret_key_refuses_to_run(keys, tmp_path, monkeypatch):
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / SERVER_CONTEXT).write_bytes((keys / CLIENT_CONTEXT).read_bytes())
    monkeypatch.setenv(HE_KEYS_ENV, str(leaky))
    agg, server = EncryptedRoundAggregator(), ctx()

    agg.handle_event(EventType.START_RUN, server)

    assert EventType.FATAL_SYSTEM_ERROR in server.get_engine().events
    assert agg.context is None


def test_missing_keys_name_the_provisioning_command(tmp_path, monkeypatch):
    monkeypatch.setenv(HE_KEYS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"provision the consortium with the HEKeysBuilder .*consortium poc up"):
        load_context(ctx("a"), secret=True)


def test_a_message_with_too_few_ciphertexts_is_rejected_before_anything_is_added(keys):
    from consortium.crypto.packed import Envelope, digest
    from consortium.flare.he.site import message_from_dict, message_to_dict

    big = {"w": np.zeros((1, 5000), dtype=np.float32), "b": np.zeros(1, dtype=np.float32)}  # 2 ciphertexts
    agg, server = EncryptedRoundAggregator(), ctx()
    server.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(big, {}), private=True, sticky=False)
    agg.handle_event(EventType.START_RUN, server)
    c = ctx("a")
    HEDecryptTaskData().process(DXO(DataKind.WEIGHTS, big).to_shareable(), c)
    out = HEEncryptResult().process(DXO(DataKind.WEIGHT_DIFF, big, meta=SITES["a"].to_meta()).to_shareable(), c)
    dxo = from_shareable(out)
    msg = message_from_dict("a", dxo.data)
    short = msg.ciphertexts[:1]  # a consistent envelope for a truncated message
    dxo.data = message_to_dict(type(msg)(short, Envelope(msg.envelope.key_id, msg.envelope.layout_digest, 1, digest(short))))
    s = dxo.to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: "a"})
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 0)

    assert not agg.accept(s, server)
    assert "the model needs 2 of 4096 slots" in agg.round.rejected["a"]
