"""FLARE's deny list as the aggregator reads it: names, changes, and a damaged file failing closed."""

from __future__ import annotations

import json

import pytest

from consortium.operations.deny_list import DenyList, read_deny_list


def test_no_file_revokes_nobody_and_a_listed_site_is_refused_with_the_reason(tmp_path):
    deny = DenyList(tmp_path)
    assert deny.refusal("hungary") is None
    (tmp_path / "disabled_clients.json").write_text(json.dumps({"disabled_clients": ["hungary"]}))
    assert "hungary revoked" in deny.refusal("hungary") and deny.refusal("cleveland") is None
    (tmp_path / "disabled_clients.json").write_text(json.dumps({"disabled_clients": []}))  # enable_client
    assert deny.refusal("hungary") is None


@pytest.mark.parametrize("text, words", [("{oops", "not JSON"), (json.dumps({"disabled_clients": "hungary"}), "must be a list"),
                                         (json.dumps([1]), "must be a list")])
def test_a_damaged_list_is_an_error_naming_the_file_and_refuses_everyone(tmp_path, text, words):
    path = tmp_path / "disabled_clients.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=words):
        read_deny_list(path)
    refusal = DenyList(tmp_path).refusal("cleveland")
    assert refusal is not None and "fail closed" in refusal and str(path) in refusal
