"""The HE job's registry and the server's ciphertext layout check (pure: ciphertexts are bytes)."""

from __future__ import annotations

import hashlib
import json

import pytest

from consortium.protocol.round_record import RoundRecord
from consortium.registry.ciphertext import INDEX, CiphertextRegistry, check_layout

ENVELOPE = {"key_id": "e8563faf7fa69f62", "layout_digest": "2af65a94a6be3149", "count": 2, "sha256": "ab"}


def test_full_ciphertexts_and_a_partial_last_one_pass():
    check_layout([4096, 4096, 17], want=3, slots=4096)
    check_layout([4096], want=1, slots=4096)


@pytest.mark.parametrize(("sizes", "want"), [
    ([4096, 17], 3),  # too few for the model
    ([4096, 4096, 4096, 17], 3),  # one more than the model needs
    ([4096, 100, 17], 3),  # a short ciphertext before the last: values would land in the wrong slots
    ([4096, 4096, 0], 3),  # an empty last one
    ([], 1),
])
def test_a_layout_the_model_does_not_have_is_refused_saying_what_arrived(sizes, want):
    with pytest.raises(ValueError, match=f"{len(sizes)} ciphertexts of sizes .*the model needs {want} of 4096 slots"):
        check_layout(sizes, want=want, slots=4096)


def record(round_number):
    return RoundRecord(round=round_number, sites=2, mean_train_loss=0.5, pooled_score=0.75, contributors=["a", "b"],
                       rejected={"c": "quarantined"})


def test_a_round_is_saved_with_its_hash_and_who_made_it(tmp_path):
    reg = CiphertextRegistry(tmp_path / "encrypted_rounds")

    entry = reg.add(3, [b"\x01\x02", b"\x03"], ENVELOPE, 0.25, 486.0, record(3))

    data = (tmp_path / "encrypted_rounds" / "round_0003.ckks").read_bytes()
    assert data == b"\x00" * 7 + b"\x02\x01\x02" + b"\x00" * 7 + b"\x01\x03"  # each ciphertext after its 8-byte length
    line = (tmp_path / "encrypted_rounds" / INDEX).read_text()
    assert json.loads(line) == entry
    assert list(entry) == ["version", "round", "file", "sha256", "envelope", "scale", "canary", "contributors", "rejected",
                           "pooled_score", "metric"]  # the index as admin's `models list` reads it
    assert entry["version"] == 4 and entry["file"] == "round_0003.ckks"
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["contributors"] == ["a", "b"] and entry["rejected"] == {"c": "quarantined"}


def test_another_round_s_record_does_not_name_who_made_this_one(tmp_path):
    entry = CiphertextRegistry(tmp_path).add(4, [b"x"], ENVELOPE, 0.25, 486.0, record(3))

    assert "contributors" not in entry and "pooled_score" not in entry


def test_a_round_saved_already_is_not_written_again(tmp_path):
    reg = CiphertextRegistry(tmp_path)
    reg.add(0, [b"first"], ENVELOPE, 0.25, 486.0)

    assert reg.add(0, [b"second"], ENVELOPE, 0.25, 486.0) is None
    assert (tmp_path / "round_0000.ckks").read_bytes().endswith(b"first")
    assert len((tmp_path / INDEX).read_text().splitlines()) == 1
