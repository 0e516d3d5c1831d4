"""Checks for what comes from outside the process: names, relative paths and sizes.

Everything read from a file, an archive, a bucket, an API, a YAML file or the
command line is hostile until one of these checks passed where it entered
(docs/threat-model.md lists each entry point and the check it gets). They
raise `UntrustedInput`, a ValueError whose message names the input and what is
valid, before anything is written.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import IO

MAX_NAME = 128
# A plain name: ASCII letters and digits, then also . _ - ; so never "", ".", "..", a path, markup or odd Unicode.
_PLAIN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
# One part of a relative object or file name we publish or download (e.g. variables.data-00000-of-00001).
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+@-]{0,254}")
MAX_DEPTH = 16
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format (bidi overrides), surrogates, line breaks
MAX_TEXT_BYTES = 1 << 20  # a YAML suite or settings file: a few KB in practice


class UntrustedInput(ValueError):
    """Input from outside that is refused: the message names it and says what is valid."""


def plain_name(value: object, what: str) -> str:
    """`value` if it is a plain name (a run id, a suite, a trial): usable as one file or object name anywhere."""
    if not isinstance(value, str) or not _PLAIN.fullmatch(value):
        raise UntrustedInput(
            f"{what} {value!r} is not a plain name: 1-{MAX_NAME} ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def relative_name(value: object, what: str) -> PurePosixPath:
    """`value` as a relative POSIX path whose every part is a plain file name: never absolute, never `..`."""
    if not isinstance(value, str) or not value:
        raise UntrustedInput(f"{what} {value!r} is not a relative file name")
    path = PurePosixPath(value)
    if (
        path.is_absolute()
        or len(path.parts) > MAX_DEPTH
        or path.as_posix() != value
        or not all(_PART.fullmatch(part) for part in path.parts)
    ):
        raise UntrustedInput(
            f"{what} {value!r} is not a relative file name (at most {MAX_DEPTH} parts of ASCII letters, digits "
            "and . _ - = + @, none starting with '.'; no absolute path, no '..', no '//' or backslash)"
        )
    return path


def inside(base: str | Path, name: str, what: str) -> Path:
    """The path of relative `name` under `base`, checked not to leave it, through a symlink either."""
    base = Path(base)
    target = base.joinpath(*relative_name(name, what).parts)
    root = base.resolve()
    if not target.resolve().is_relative_to(root):
        raise UntrustedInput(f"{what} {name!r} leads outside {base} (through a symbolic link)")
    return target


def read_at_most(stream: IO[bytes], limit: int, what: str) -> bytes:
    """All of `stream` if it holds at most `limit` bytes; refused after reading limit + 1, never more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UntrustedInput(f"{what} holds more than {limit:,} bytes: refused without reading the rest")
    return data


def read_small_text(path: str | Path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file a person writes (a suite, a settings file): refused past `limit` bytes."""
    with open(path, "rb") as f:
        data = read_at_most(f, limit, f"{what} {path}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UntrustedInput(f"{what} {path} is not UTF-8 text ({e})") from None


def printable(text: str) -> str:
    """`text` with control and format characters written as Python escapes, safe to print on a terminal.

    A name from the API holding an escape sequence ("\\x1b[2J"), a bidi override or a line break would
    otherwise clear the screen, reorder or forge what we show.
    """
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNPRINTABLE else c for c in text
    )


SQLITE_URI = "sqlite:///"  # MLflow's local store: sqlite:///relative.db or sqlite:////absolute.db


def tracking_uri(uri: str) -> str:
    """`uri` if MLflow can take it and it carries no credentials (it is shown in the report and kept in
    run.json); '' means no export."""
    from urllib.parse import urlsplit

    if not uri:
        return uri
    parts = urlsplit(uri)
    no_host = parts.scheme in ("http", "https") and not parts.hostname
    if (
        not (parts.scheme or uri == "databricks")  # MLflow's name for the Databricks workspace of the environment
        or no_host
        or any(unicodedata.category(c) in _UNPRINTABLE or c.isspace() for c in uri)
    ):
        raise UntrustedInput(
            f"--mlflow-uri {uri!r}: give a tracking URI such as http://host:5000 or sqlite:///mlflow.db"
        )
    if parts.username or parts.password:
        raise UntrustedInput(
            "--mlflow-uri must not carry credentials (it is shown in the report): "
            "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD instead"
        )
    return uri


MAX_URL = 2048


def webhook_url(url: str, what: str = "--notify") -> str:
    """`url` if it is an http(s) URL with a host, no credentials and no odd characters; '' means no notification.

    The URL is a secret (a Slack-style webhook carries its token in the path), so no message here repeats
    it or a part of it: each says only what is wrong.
    """
    from urllib.parse import urlsplit

    if not url:
        return url
    if len(url) > MAX_URL:
        raise UntrustedInput(f"{what}: the webhook URL is longer than {MAX_URL} characters")
    if any(unicodedata.category(c) in _UNPRINTABLE or c.isspace() for c in url):
        raise UntrustedInput(f"{what}: the webhook URL holds whitespace or a control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
    except ValueError:
        raise UntrustedInput(f"{what}: the webhook URL is malformed (its host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise UntrustedInput(f"{what}: the webhook URL must start with https:// or http://")
    if not parts.hostname:
        raise UntrustedInput(f"{what}: the webhook URL has no host")
    if parts.username or parts.password:
        raise UntrustedInput(f"{what}: the webhook URL must not carry credentials (user:password@ before the host)")
    return url
