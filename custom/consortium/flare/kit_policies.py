"""A kit's signed local policies, checked where they are used: the server's audit component checks
its own kit at start (FLARE verifies ``startup/`` only), and ``consortium kit doctor`` any kit.

The names are those :mod:`consortium.provisioning.builders.site_policies` writes; FLARE's signature
builder signs ``local/`` of HE kits (every kit of ours) into ``local/signature.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SIGNATURE_FILE = "signature.json"  # nvflare.lighter.constants.ProvFileName.SIGNATURE_JSON
SERVER_AUDIT_FILE = "consortium_audit__p_resources.json"
LOCAL_POLICY_FILES = ("resources.json", "authorization.json", "privacy.json")
# the server kit's declaration of the job process's keeper of the sites' trail heads (flare.audit.server_heads)
HEADS_FILE = "consortium_heads__j_resources.json"
HEADS_COMPONENT = {"id": "consortium_trail_heads", "path": "consortium.flare.audit.server_heads.ServerTrailHeads",
                   "args": {"folder": "audit"}}
DECLARATION = {HEADS_FILE: {"components": [HEADS_COMPONENT]}}  # file in the server kit's startup/ -> content


def policy_signature_problems(kit: Path) -> list[str]:
    """Each policy file of ``kit`` that its folder's ``signature.json`` does not vouch for, checked
    against ``startup/rootCA.pem``, and a server kit's missing audit declaration; empty when all
    are there, signed and unchanged. A kit without ``local/signature.json`` (not an HE kit) gives
    one problem saying so."""
    from nvflare.lighter.utils import load_crt, verify_content

    kit = Path(kit)
    local = kit / "local"
    sig_file = local / SIGNATURE_FILE
    if not sig_file.is_file():
        return [f"{sig_file}: missing: the kit's local policies are not signed"]
    try:
        signatures = json.loads(sig_file.read_text())
        key = load_crt(os.fspath(kit / "startup" / "rootCA.pem")).public_key()
    except (OSError, ValueError) as e:
        return [f"{sig_file}: cannot be read with {kit / 'startup' / 'rootCA.pem'}: {e}"]
    problems = []
    is_server = (kit / "startup" / "fed_server.json").is_file()
    audit_decl = kit / "startup" / SERVER_AUDIT_FILE
    if is_server and not audit_decl.is_file():  # FLARE checks the startup files present, not the ones deleted
        problems.append(f"{audit_decl}: missing: the server would run without its audit component")
    for name in DECLARATION if is_server else ():
        if not (kit / "startup" / name).is_file():
            problems.append(f"{kit / 'startup' / name}: missing: the server's jobs would not keep the sites' trail heads")
    for name in LOCAL_POLICY_FILES:
        path = local / name
        if not path.is_file():
            if name == "privacy.json" and is_server:
                continue  # the server has no privacy.json
            problems.append(f"{path}: missing")
        elif name not in signatures:
            problems.append(f"{path}: not signed (not listed in {sig_file})")
        else:
            try:
                verify_content(path.read_bytes(), signatures[name], key)
            except Exception:  # cryptography's InvalidSignature, or a signature that is not base64
                problems.append(f"{path}: changed since it was signed (signature in {sig_file} does not match)")
    return problems
