"""The hash-chained trail: what is written verifies; one edited, deleted, moved or cut-off line
is named by its line number; a damaged trail is never extended."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from consortium.audit.chain import GENESIS, HEAD_FILE, TRAIL_FILE, AuditTrail, TrailError, line_hash
from consortium.audit.verify import verify_trail

N = 6


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "audit")
    for i in range(N):
        t.append({"event": "task_received", "task": "train", "round": i})
    return t


def lines(t: AuditTrail) -> list[str]:
    return t.path.read_text().splitlines(keepends=True)


def rewrite(t: AuditTrail, new: list[str]) -> None:
    t.path.write_text("".join(new))


def problem(t: AuditTrail) -> str:
    result = verify_trail(t.folder)
    assert not result.ok
    return str(result.problem)


def test_a_trail_as_written_verifies_and_each_line_links_to_the_one_before(trail):
    result = verify_trail(trail.folder)

    assert result.ok and result.lines == N and result.end.seq == N
    entries = [json.loads(line) for line in lines(trail)]
    assert [e["seq"] for e in entries] == list(range(1, N + 1))
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] == line_hash(a) for a, b in zip(entries, entries[1:], strict=False))
    assert json.loads((trail.folder / HEAD_FILE).read_text()) == {"seq": N, "hash": entries[-1]["hash"]}


def test_an_edited_line_is_named(trail):
    new = lines(trail)
    new[2] = new[2].replace('"round":2', '"round":7')
    rewrite(trail, new)

    assert problem(trail).startswith("line 3: edited")


def test_an_edit_whose_hash_was_recomputed_is_named_by_the_next_link(trail):
    new = lines(trail)
    entry = json.loads(new[2])
    entry["record"]["round"] = 7
    entry["hash"] = line_hash(entry)
    new[2] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    rewrite(trail, new)

    assert problem(trail).startswith("line 3: edited")


def test_a_reformatted_line_counts_as_edited(trail):
    new = lines(trail)
    new[1] = json.dumps(json.loads(new[1]), indent=1).replace("\n", "") + "\n"  # same content, other bytes
    rewrite(trail, new)

    assert problem(trail).startswith("line 2: edited")


def test_a_deleted_line_is_named(trail):
    rewrite(trail, [line for i, line in enumerate(lines(trail)) if i != 3])

    assert problem(trail).startswith("line 4: deleted: record 4 missing")


def test_a_deleted_first_line_is_named(trail):
    rewrite(trail, lines(trail)[1:])

    assert problem(trail).startswith("line 1: deleted")


def test_a_deleted_last_line_is_caught_by_the_head(trail):
    rewrite(trail, lines(trail)[:-1])

    assert problem(trail).startswith(f"line {N}: deleted: the trail ends at record {N - 1} but its head names record {N}")


def test_swapped_lines_are_named(trail):
    new = lines(trail)
    new[1], new[2] = new[2], new[1]
    rewrite(trail, new)

    assert problem(trail).startswith("line 2: reordered: record 3 is here but record 2 is at line 3")


def test_a_line_moved_to_the_end_is_named(trail):
    new = lines(trail)
    rewrite(trail, [*new[:1], *new[2:], new[1]])

    assert problem(trail).startswith("line 2: reordered")


def test_a_duplicated_line_is_named(trail):
    new = lines(trail)
    rewrite(trail, [*new[:3], new[2], *new[3:]])

    assert problem(trail).startswith("line 4: reordered: record 3 is duplicated")


def test_a_truncated_last_line_is_named(trail):
    text = trail.path.read_text()
    trail.path.write_text(text[:-40])

    assert problem(trail).startswith(f"line {N}: truncated")


def test_a_line_that_is_not_json_is_named(trail):
    new = lines(trail)
    new[4] = new[4][:30] + "\n"
    rewrite(trail, new)

    assert problem(trail).startswith("line 5: not JSON")


def test_a_missing_head_fails_verification(trail):
    (trail.folder / HEAD_FILE).unlink()

    assert "head" in problem(trail) and "missing" in problem(trail)


def test_no_trail_at_all_is_an_error_not_a_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match=TRAIL_FILE):
        verify_trail(tmp_path / "audit")


def test_a_site_stopped_between_a_line_and_its_head_verifies_and_goes_on(trail):
    head = (trail.folder / HEAD_FILE).read_text()
    trail.append({"event": "job_ended"})
    (trail.folder / HEAD_FILE).write_text(head)  # the head write of line N + 1 never happened

    assert verify_trail(trail.folder).ok
    assert trail.append({"event": "job_started"}).seq == N + 2
    assert verify_trail(trail.folder).ok


@pytest.mark.parametrize("damage", ["delete last", "edit last", "truncate"])
def test_a_damaged_trail_is_not_extended(trail, damage):
    new = lines(trail)
    if damage == "delete last":
        rewrite(trail, new[:-1])
    elif damage == "edit last":
        rewrite(trail, [*new[:-1], new[-1].replace('"round":5', '"round":9')])
    else:
        trail.path.write_text("".join(new)[:-10])
    before = trail.path.read_bytes()

    with pytest.raises(TrailError, match="cannot be extended"):
        trail.append({"event": "result_sent"})
    assert trail.path.read_bytes() == before


def test_a_record_that_is_not_json_is_refused_and_nothing_written(trail):
    before = trail.path.read_bytes()
    with pytest.raises(ValueError):
        trail.append({"epsilon": float("nan")})
    assert trail.path.read_bytes() == before and verify_trail(trail.folder).ok


def _append_many(folder, worker, count):
    t = AuditTrail(folder)
    for i in range(count):
        t.append({"worker": worker, "i": i})


def test_jobs_appending_at_once_keep_one_chain(tmp_path):
    """Each job at a site runs in its own process; the lock keeps their lines in one chain."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(tmp_path, w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in workers)

    result = verify_trail(tmp_path)
    assert result.ok and result.lines == 100
