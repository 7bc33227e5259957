"""Text normalization for the router: request paths, route paths, hosts and SNI names.

Request paths are normalized the way Kong 3.x does before routing (RFC 3986 §6.2.2): percent
triplets are upper-cased, triplets of unreserved characters are decoded, dot segments are
removed and runs of slashes are merged.  Plain route paths get the same treatment at build
time; regex route paths only get the two percent steps (a decoded character is escaped so it
stays literal inside the regex).  Characters that may not appear raw in a URI path (space,
non-ASCII, ``|`` ...) are percent-encoded as UTF-8 first, on both sides, so ``/caf%C3%A9``
and a route written ``/café`` meet.
"""

from __future__ import annotations

import re

UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Anything that might change under normalization: a percent sign, a dot segment, a doubled
# slash, or a character that must be percent-encoded.  Most paths have none of these.
_NEEDS_WORK = re.compile(r"%|//|/\.|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_NOT_PATH_CHAR = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
# ``(?<name>`` (Rust / PCRE) -> ``(?P<name>`` (Python); lookbehinds ``(?<=``/``(?<!`` stay.
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


def _encode_char(match: re.Match[str]) -> str:
    try:
        raw = match.group(0).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = match.group(0).encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in raw)


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in UNRESERVED else "%" + match.group(1).upper()


def _decode_unreserved_escaped(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return re.escape(char) if char in UNRESERVED else "%" + match.group(1).upper()


def remove_dot_segments(path: str) -> str:
    """Drop ``.`` and empty segments, let ``..`` pop one; keep a trailing slash (Kong's rule)."""
    kept: list[str] = []
    ends_with_name = False
    for segment in path.split("/")[1:]:
        if segment in ("", "."):
            ends_with_name = False
        elif segment == "..":
            if kept:
                kept.pop()
            ends_with_name = False
        else:
            kept.append(segment)
            ends_with_name = True
    if not kept:
        return "/"
    joined = "/" + "/".join(kept)
    return joined if ends_with_name else joined + "/"


def normalize_path(path: str) -> str:
    """The normalized form of an absolute request path (or plain route path)."""
    if _NEEDS_WORK.search(path) is None:
        return path
    if _NOT_PATH_CHAR.search(path) is not None:
        path = _NOT_PATH_CHAR.sub(_encode_char, path)
    if "%" in path:
        path = _TRIPLET.sub(_decode_unreserved, path)
    if path.startswith("/") and ("//" in path or "/." in path):
        path = remove_dot_segments(path)
    return path


def normalize_regex_path(pattern: str) -> str:
    """A regex route path (without its ``~``) after the two percent steps, as Python syntax."""
    if "%" in pattern:
        pattern = _TRIPLET.sub(_decode_unreserved_escaped, pattern)
    return _NAMED_GROUP.sub("(?P<", pattern)


def split_host_port(host: str) -> tuple[str, int | None]:
    """``Example.COM:8080`` -> (``example.com``, 8080); a trailing dot is dropped."""
    if ":" not in host and not host.endswith("."):
        return host.lower(), None
    port: int | None = None
    if host.startswith("["):
        close = host.find("]")
        if close != -1:
            rest = host[close + 1 :]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
            host = host[: close + 1]
    else:
        colon = host.rfind(":")
        if colon != -1 and host[colon + 1 :].isdigit():
            port = int(host[colon + 1 :])
            host = host[:colon]
    host = host.lower()
    if host.endswith(".") and len(host) > 1:
        host = host[:-1]
    return host, port


def sanitize_postfix(postfix: str) -> str:
    """What remains after stripping a prefix, minus a leading ``./`` or ``../`` (Kong's rule)."""
    if not postfix.startswith("."):
        return postfix
    if postfix in (".", ".."):
        return ""
    if postfix.startswith("./"):
        return postfix[2:]
    if postfix.startswith("../"):
        return postfix[3:]
    return postfix
