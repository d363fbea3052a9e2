"""Following a job's progress file while FLARE writes, archives and deletes it."""

from __future__ import annotations

import json

from consortium.jobs.submit import _new_rounds


def _line(r: int) -> str:
    return json.dumps({"round": r, "sites": 4, "mean_train_loss": 0.5, "pooled_score": 0.8, "metric": "accuracy",
                       "finished_at": 1.0})


def test_new_rounds_after_the_seen_ones(tmp_path):
    p = tmp_path / "progress.jsonl"
    p.write_text("\n".join(_line(r) for r in range(3)) + "\n")
    rounds, seen = _new_rounds(p, 1)
    assert [s.round for s in rounds] == [1, 2] and seen == 3


def test_missing_file_is_not_an_error(tmp_path):
    assert _new_rounds(tmp_path / "gone.jsonl", 0) == ([], 0)


def test_a_half_written_line_is_left_for_the_next_read(tmp_path):
    p = tmp_path / "progress.jsonl"
    p.write_text(_line(0) + "\n" + _line(1)[:20])
    rounds, seen = _new_rounds(p, 0)
    assert [s.round for s in rounds] == [0] and seen == 1


def test_an_unreadable_complete_line_is_skipped_not_retried_forever(tmp_path):
    p = tmp_path / "progress.jsonl"
    p.write_text(_line(0) + "\n" + '{"round": 1}' + "\n" + _line(2) + "\n")
    rounds, seen = _new_rounds(p, 0)
    assert [s.round for s in rounds] == [0, 2] and seen == 3
