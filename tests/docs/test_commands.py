"""Every command the README and the guides show is one the command line accepts: `consortium GROUP
COMMAND --help` exits 0 for each pair shown in code, and for every alternative of the front page's
command tree, and names every option the docs give it."""

from __future__ import annotations

import re

import pytest
from docs_text import README, section
from test_guides import PAGES, code_text

from consortium.cli.main import parser

SHOWN = re.compile(r"(?:^|[\s/(])consortium ([a-z][\w-]*)(?: +([a-z][\w-]*))?([^\n#]*)", flags=re.M)


def options_shown() -> dict[tuple[str, ...], set[str]]:
    """(group, command) -> the options written after it in the docs' code (up to a comment)."""
    out: dict[tuple[str, ...], set[str]] = {}
    for page in PAGES:
        for group, command, rest in SHOWN.findall(code_text(page.read_text())):
            out.setdefault((group, command) if command else (group,), set()).update(re.findall(r"--[a-z][\w-]*", rest))
    return out


def shown() -> set[tuple[str, ...]]:
    pairs = set(options_shown())
    tree = re.search(r"```\n(consortium demo\n.*?)```", section(README.read_text(), "## The command line"), flags=re.S)
    for line in tree.group(1).splitlines():
        group, _, rest = line.removeprefix("consortium ").partition(" ")
        for alternative in rest.split("|"):
            words = alternative.split()
            pairs.add((group, words[0]) if words and re.fullmatch(r"[a-z][\w-]*", words[0]) else (group,))
    return pairs


@pytest.mark.parametrize("argv", sorted(shown()), ids=" ".join)
def test_the_command_line_accepts_every_command_the_docs_show(argv, capsys):
    with pytest.raises(SystemExit) as done:
        parser().parse_args([*argv, "--help"])

    assert done.value.code == 0
    assert "usage: consortium " + " ".join(argv) in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", sorted(k for k, v in options_shown().items() if v), ids=" ".join)
def test_every_option_the_docs_give_a_command_is_one_it_takes(argv, capsys):
    with pytest.raises(SystemExit):
        parser().parse_args([*argv, "--help"])
    usage = capsys.readouterr().out

    assert not {o for o in options_shown()[argv] if o not in usage}
