"""``consortium kit certs KITS``: every kit's certificate, its expiry, and a warning a month ahead."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from consortium.admin.kit import EXPIRY_WARNING_DAYS, Kit, common_name, load_cert, utc_now


@dataclass(frozen=True)
class CertificateRow:
    kit: str
    kind: str
    subject: str
    issuer: str
    not_after: dt.datetime
    days_left: int

    def line(self, warn_days: int = EXPIRY_WARNING_DAYS) -> str:
        flag = "EXPIRED" if self.days_left < 0 else f"renew within {self.days_left} days" if self.days_left < warn_days else ""
        return (f"{self.kit:32s} {self.kind:6s} {self.subject:32s} {self.issuer:20s} {self.not_after:%Y-%m-%d} "
                f"{self.days_left:5d} {flag}").rstrip()


def certificates(kits: Path, now: dt.datetime | None = None) -> list[CertificateRow]:
    """Every kit's certificate under ``kits`` (a provisioning's ``prod_NN`` folder, or one kit)."""
    now = utc_now(now)
    folders = [kits] if (kits / "startup").is_dir() else sorted(p for p in kits.iterdir() if (p / "startup").is_dir())
    if not folders:
        raise ValueError(f"{kits}: no startup kits here (a folder with startup/, or a prod_NN folder of them)")
    rows = []
    for folder in folders:
        kit = Kit.load(folder)
        cert = load_cert(kit.cert)
        end = cert.not_valid_after_utc
        rows.append(CertificateRow(folder.name, kit.kind, common_name(cert.subject), common_name(cert.issuer), end, (end - now).days))
    return rows
