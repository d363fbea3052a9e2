"""Provisioning builder: the consortium's CKKS keys, made once and kept in the provisioning state.

Unlike FLARE's ``HEBuilder`` (a fresh context on every provisioning run), the secret context is
stored in ``<workspace>/<project>/state/he_context.tenseal`` beside FLARE's ``cert.json`` and
reused, so adding a site later does not re-key the consortium; so is the public context made from
it (``he_server_context.tenseal``), whose bytes name the key (:func:`consortium.crypto.ckks.key_id_of`).
Every site's kit gets ``startup/client_context.tenseal`` (secret key) and a copy of the public
``startup/server_context.tenseal`` (to name the key), the server's kit the public one only. Listed before FLARE's
``SignatureBuilder`` in project.yml, so all are signed and FLARE's
``load_tenseal_context_from_workspace`` refuses an unsigned or altered one in secure mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import tenseal as ts
from nvflare.lighter.constants import ProvFileName
from nvflare.lighter.spec import Builder

from consortium.crypto.ckks import CKKSParameters, check_context, make_context, public_copy

STATE_FILE = "he_context.tenseal"
PUBLIC_STATE_FILE = "he_server_context.tenseal"


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret-key file readable by its owner only from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode on O_CREAT


class HEKeysBuilder(Builder):
    def __init__(self, poly_modulus_degree: int = 8192, coeff_mod_bit_sizes: list[int] | None = None,
                 scale_bits: int = 40, symmetric: bool = True) -> None:
        self.params = CKKSParameters(poly_modulus_degree, tuple(coeff_mod_bit_sizes or (60, 40)), scale_bits, symmetric)

    def _secret_context(self, state_dir: Path) -> ts.Context:
        path = state_dir / STATE_FILE
        if path.is_file():
            ctx = ts.context_from(path.read_bytes())
            check_context(ctx, want_secret=True)
            return ctx
        ctx = make_context(self.params)
        state_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, ctx.serialize(save_secret_key=True))
        return ctx

    def build(self, project, ctx) -> None:
        state_dir = Path(ctx.get_state_dir())
        secret = self._secret_context(state_dir)
        client_bytes = (state_dir / STATE_FILE).read_bytes()  # as stored: every kit, every run, the same bytes
        public = state_dir / PUBLIC_STATE_FILE
        if not public.is_file():
            public.write_bytes(public_copy(secret).serialize())
        server_bytes = public.read_bytes()
        check_context(ts.context_from(server_bytes), want_secret=False)
        server = project.get_server()
        (Path(ctx.get_kit_dir(server)) / ProvFileName.SERVER_CONTEXT_TENSEAL).write_bytes(server_bytes)
        for client in project.get_clients():
            kit = Path(ctx.get_kit_dir(client))
            _write_private(kit / ProvFileName.CLIENT_CONTEXT_TENSEAL, client_bytes)
            (kit / ProvFileName.SERVER_CONTEXT_TENSEAL).write_bytes(server_bytes)
