"""What the server reports about one round: sites heard from, mean training loss, pooled score.

The pooled score is that of the round's *received* global model on the union of the sites' test
splits: ``sum_k score_sum_k / sum_k n_k``, the per-example metric (accuracy, Dice) averaged over
every test example of every site -- each site shares only two numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SiteRoundReport:
    site: str
    n_samples: int
    train_loss: float
    val_n: int
    val_score_sum: float


@dataclass(frozen=True)
class RoundSummary:
    round: int
    sites: int
    mean_train_loss: float
    pooled_score: float
    metric: str = "accuracy"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self, total_sites: int | None = None) -> str:
        of = f"/{total_sites}" if total_sites else ""
        return (
            f"round {self.round:3d}  sites {self.sites}{of}  mean loss {self.mean_train_loss:.4f}  "
            f"pooled {self.metric} {self.pooled_score:.3f}"
        )


def summarise_round(round_number: int, reports: Sequence[SiteRoundReport], metric: str = "accuracy") -> RoundSummary:
    """Sample-weighted mean training loss and pooled score over the sites that reported."""
    if not reports:
        raise ValueError(f"round {round_number}: no site reports to summarise")
    n = sum(r.n_samples for r in reports)
    val_n = sum(r.val_n for r in reports)
    return RoundSummary(
        round=round_number,
        sites=len(reports),
        mean_train_loss=sum(r.train_loss * r.n_samples for r in reports) / n,
        pooled_score=sum(r.val_score_sum for r in reports) / val_n if val_n else float("nan"),
        metric=metric,
    )
