"""Startup kits as FLARE's provisioner lays them out (``startup/rootCA.pem``, the participant's key
and certificate, its ``fed_*.json``), made with FLARE's own key and certificate helpers (2048-bit
RSA, certificates signed by the project root CA): what the audit trail signs with."""

from __future__ import annotations

from pathlib import Path

from nvflare.lighter.utils import Identity, generate_cert, generate_keys, serialize_cert, serialize_pri_key


class RootCA:
    def __init__(self, name: str = "heart_consortium") -> None:
        self.key, pub = generate_keys()
        self.identity = Identity(name)
        self.cert = generate_cert(self.identity, self.identity, self.key, pub, ca=True)

    def kit(self, root: Path, name: str, server: bool = False) -> Path:
        """``root`` as ``name``'s kit: ``startup/`` with the root CA, its key and its certificate."""
        startup = Path(root) / "startup"
        startup.mkdir(parents=True, exist_ok=True)
        key, pub = generate_keys()
        cert = generate_cert(Identity(name, org="org"), self.identity, self.key, pub)
        stem = "server" if server else "client"
        (startup / f"{stem}.key").write_bytes(serialize_pri_key(key))
        (startup / f"{stem}.key").chmod(0o600)
        (startup / f"{stem}.crt").write_bytes(serialize_cert(cert))
        (startup / "rootCA.pem").write_bytes(serialize_cert(self.cert))
        (startup / f"fed_{stem}.json").write_text("{}")
        return Path(root)
