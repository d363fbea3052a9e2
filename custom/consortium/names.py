"""One rule for the names that become folders, files and certificate subjects: FLARE's own.

FLARE checks a participant's name with ``nvflare.apis.utils.format_check.name_check`` (the
patterns of its ``type_pattern_mapping``) and a certificate name to 64 characters
(``nvflare cert request``), but only when it gets to them: after our commands have made folders
and files from the name. :func:`check_name` applies the same patterns first, at the edge, with
``re.fullmatch`` (FLARE's ``re.match`` with ``$`` lets a trailing newline through), and names the
field and the value. A name that passes holds no path separator, does not start with ``.`` and
fits in a file name.

    kind    pattern (FLARE's)                                  used for
    site    ^[A-Za-z0-9-_]+$              ("client", "site")   kit folders, request files
    org     ^[A-Za-z0-9_]+$               ("org")              certificate subjects
    job     ^[A-Za-z0-9][A-Za-z0-9._-]*$  ("job_name")         job folders (meta.json ``name``)
    app     ^[A-Za-z0-9][A-Za-z0-9._-]*$  (check_job_app_name) app folders of a job
    project ^[A-Za-z0-9][A-Za-z0-9._-]*$  (safe_project_name)  the provisioning workspace's folder
    server  FLARE's host name pattern     ("server")           the server's kit folder
    admin   FLARE's e-mail pattern        ("admin")            admin kit folders

No nvflare import: ``tests/test_names.py`` checks these patterns against FLARE's.
"""

from __future__ import annotations

import re

MAX_LENGTH = 64  # FLARE's certificate name bound; well under a file name's 255 bytes
HOST_MAX_LENGTH = 253  # a DNS name

_HOST = r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])"
_JOB = r"[A-Za-z0-9][A-Za-z0-9._-]*"
PATTERNS = {  # kind -> (FLARE's pattern without its anchors, what it means in words, maximum length)
    "site": (r"[A-Za-z0-9-_]+", "letters, digits, '-' and '_'", MAX_LENGTH),
    "org": (r"[A-Za-z0-9_]+", "letters, digits and '_'", MAX_LENGTH),
    "job": (_JOB, "a letter or digit, then letters, digits, '.', '_' and '-'", MAX_LENGTH),
    "app": (_JOB, "a letter or digit, then letters, digits, '.', '_' and '-'", MAX_LENGTH),
    "project": (_JOB, "a letter or digit, then letters, digits, '.', '_' and '-'", MAX_LENGTH),
    "server": (_HOST, "a host name (letters, digits, '-', parts joined by '.')", HOST_MAX_LENGTH),
    "admin": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}", "an e-mail address", MAX_LENGTH),
}
FLARE_KINDS = {"site": "client", "org": "org", "job": "job_name", "app": "job_name", "project": "job_name",
               "server": "server", "admin": "admin"}  # our kind -> FLARE's type_pattern_mapping key


class ConfigurationError(ValueError):
    """A project, job or command-line value that cannot be used; the message names file, field and value."""


def name_problem(kind: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``kind`` name, or None when it is one."""
    if kind not in PATTERNS:
        raise KeyError(f"no name rule for {kind!r}; kinds: {sorted(PATTERNS)}")
    pattern, words, limit = PATTERNS[kind]
    if not isinstance(value, str):
        return f"a {kind} name must be a string, got {type(value).__name__}"
    if not value:
        return f"a {kind} name must not be empty"
    if len(value) > limit:
        return f"a {kind} name has at most {limit} characters, this one {len(value)}"
    if kind in ("server", "admin") and (value.startswith(".") or "/" in value or ".." in value):
        return f"a {kind} name must not hold '/' or '..' nor start with '.'"
    if not re.fullmatch(pattern, value):
        return f"a {kind} name is {words} only (FLARE's rule)"
    return None


def check_name(kind: str, value: object, where: str) -> str:
    """``value`` when it is a valid ``kind`` name (see the module docstring); otherwise
    ConfigurationError ``"<where> = <value!r>: <why>"``. ``where`` names the file and field, or
    the command's argument (``"site request: NAME"``)."""
    problem = name_problem(kind, value)
    if problem is not None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:40] + "...")
        raise ConfigurationError(f"{where} = {shown}: not a valid {kind} name: {problem}")
    return value
