"""One name rule, FLARE's own, applied before anything touches the file system."""

from __future__ import annotations

import re

import pytest
from nvflare.apis.utils.format_check import name_check, type_pattern_mapping

from consortium.names import FLARE_KINDS, PATTERNS, ConfigurationError, check_name, name_problem


@pytest.mark.parametrize("kind", sorted(PATTERNS))
def test_each_rule_is_flares_own_pattern(kind):
    assert f"^{PATTERNS[kind][0]}$" == type_pattern_mapping[FLARE_KINDS[kind]]


@pytest.mark.parametrize("value", ["cleveland", "va-long-beach", "site_2", "A" * 64])
def test_a_site_name_flare_accepts_passes(value):
    assert check_name("site", value, "x") == value
    assert name_check(value, "client")[0] is False


@pytest.mark.parametrize("value, why", [
    ("../../x", r"letters, digits, '-' and '_' only"),
    ("a/b", r"letters, digits, '-' and '_' only"),
    ("x" * 300, r"at most 64 characters, this one 300"),
    ("", r"must not be empty"),
    ("cleveland\n", r"letters, digits"),
    (None, r"must be a string, got NoneType"),
])
def test_a_bad_site_name_is_refused_naming_the_field_and_the_value(value, why):
    with pytest.raises(ConfigurationError, match=rf"^site request: NAME = .*: not a valid site name: .*{why}"):
        check_name("site", value, "site request: NAME")


def test_flares_own_check_lets_a_trailing_newline_and_any_length_through():
    """Why the rule uses fullmatch and a bound: FLARE's name_check alone passes both."""
    assert name_check("cleveland\n", "client")[0] is False
    assert name_check("x" * 300, "client")[0] is False
    assert name_problem("site", "cleveland\n") and name_problem("site", "x" * 300)


@pytest.mark.parametrize("kind, value", [("job", "../../../../tmp/x"), ("job", ".hidden"), ("app", "../app"),
                                         ("org", "a-b"), ("server", "a/../b"), ("admin", "../x@y.org"),
                                         ("project", "/etc")])
def test_no_name_that_passes_can_leave_its_folder(kind, value):
    assert name_problem(kind, value) is not None


def test_a_long_value_is_shortened_in_the_message():
    with pytest.raises(ConfigurationError) as e:
        check_name("site", "y" * 300, "where")
    assert len(str(e.value)) < 200 and re.search(r"'y{40}\.\.\.'", str(e.value))
