"""The consortium's CKKS keys are made once, at provisioning, and kept in its state."""

from __future__ import annotations

import pytest
import tenseal as ts

from conftest import PROJECT_FILE
from consortium.crypto.ckks import key_id_of
from consortium.provisioning.project import Project
from consortium.provisioning.provision import provision


def test_keys_are_made_once_and_kept_in_the_provisioning_state(tmp_path):
    project = Project.load(PROJECT_FILE)
    first = provision(project, tmp_path / "ws", poc=False)
    again = provision(project, tmp_path / "ws", poc=False)  # e.g. after adding a site

    site, server = first / "hungary" / "startup", first / "server" / "startup"
    public = (server / "server_context.tenseal").read_bytes()
    assert (site / "server_context.tenseal").read_bytes() == public  # every site names the key as the server does
    for kit in (again / "hungary" / "startup", again / "server" / "startup"):  # re-provisioning keeps the key
        assert (kit / "server_context.tenseal").read_bytes() == public
    assert (again / "hungary" / "startup" / "client_context.tenseal").read_bytes() == (site / "client_context.tenseal").read_bytes()
    assert not ts.context_from(public).is_private()
    assert (server / "signature.json").is_file() and (site / "signature.json").is_file()  # FLARE signs kits that hold a context

    # what a site encrypts, the server adds and another site decrypts
    a = ts.context_from((site / "client_context.tenseal").read_bytes())
    b = ts.context_from((first / "cleveland" / "startup" / "client_context.tenseal").read_bytes())
    at_server = ts.ckks_vector_from(ts.context_from(public), ts.ckks_vector(a, [0.25, -2.0]).serialize())
    at_server += at_server
    assert ts.ckks_vector_from(b, at_server.serialize()).decrypt() == pytest.approx([0.5, -4.0], abs=1e-6)
    assert key_id_of(public) != key_id_of((provision(project, tmp_path / "other", poc=False) / "server" / "startup"
                                          / "server_context.tenseal").read_bytes())  # another consortium, another key
    for secret in (site / "client_context.tenseal", tmp_path / "ws" / project.name / "state" / "he_context.tenseal"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
