"""An HE job's model versions are its ciphertext files, each checked against its recorded SHA-256."""

from __future__ import annotations

import json


def test_an_he_job_s_versions_are_its_ciphertext_files_checked_against_their_sha256(tmp_path):
    import hashlib

    from consortium.admin.models import list_lines

    folder = tmp_path / "workspace" / "encrypted_rounds"
    folder.mkdir(parents=True)
    lines = []
    for rnd in range(2):
        data = bytes([rnd]) * 100
        (folder / f"round_{rnd:04d}.ckks").write_bytes(data)
        lines.append(json.dumps({"version": rnd + 1, "round": rnd, "file": f"round_{rnd:04d}.ckks",
                                 "sha256": hashlib.sha256(data).hexdigest(), "contributors": ["a", "b"], "rejected": {}}))
    (folder / "index.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "round_0001.ckks").write_bytes(b"\x09" * 100)  # altered after it was recorded

    got = list_lines(tmp_path)
    assert got[0].startswith("v0001  round 0") and " ok  contributors ['a', 'b']" in got[0]
    assert "SHA-256 MISMATCH" in got[1]
