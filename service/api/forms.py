"""Strict, in-memory parsers for request bodies: urlencoded forms, multipart, JSON objects.

aiohttp's own `request.post()` raised on hostile bodies (undecodable bytes, unknown
charsets, nested multipart...) and spooled file parts over 1 MiB to a temporary file;
these parsers take the bytes already read (bounded by the caller), write nothing, and
report every problem as `MalformedField` (4001) naming the field, or `body` when no
field can be named. They run in a worker process for large bodies
(service.api.body_parser), and the bulk byte work is done by C loops that take a few milliseconds for a 10 MB
body (numpy for percent-escapes, one slice per multipart part, bracket counts before
JSON) rather than Python loops or regular expressions over the whole body, which held
the GIL for 40-130 ms each. Grammar from RFC 9110 section 5.6 (header parameters), the WHATWG
URL standard (application/x-www-form-urlencoded), RFC 7578 and RFC 2046 section 5.1
(multipart/form-data) and RFC 8259 (JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import MalformedField

# RFC 9110 section 5.6.2 token, 5.6.4 quoted-string (obs-text taken as UTF-8 text).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_MEDIA_TYPE = re.compile(rf"[ \t]*({_TOKEN}(?:/{_TOKEN})?)[ \t]*")
_PARAMETER = re.compile(rf";[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED})[ \t]*")
_TRAILING_SEMICOLON = re.compile(r";[ \t]*")
_TOKEN_RE = re.compile(_TOKEN)
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 2046 section 5.1.1: 1-70 characters from bchars, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]")
# RFC 5322 section 2.1.1: a header line is at most 998 characters.
MAX_HEADER_LINE = 998
# Field names end up in error messages: short printable text only.
MAX_NAME_CHARS = 100
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")
# Charsets a text value may declare: we decode UTF-8 only (US-ASCII is a subset).
TEXT_CHARSETS = ("utf-8", "us-ascii")
# RFC 7578 section 4.7: senders must not use Content-Transfer-Encoding; these three say
# "the bytes as they are" and so are harmless.
IDENTITY_ENCODINGS = ("7bit", "8bit", "binary")
# The JSON accepted (the session API): one object of scalars or lists of scalars, so
# nothing deeper than a list inside the object.
JSON_MAX_DEPTH = 2
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
# Value of each byte as a hex digit, 255 for the others (percent-escapes).
_HEX_VALUE = np.full(256, 255, np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX_VALUE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX_VALUE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


@dataclass(frozen=True)
class FormSettings:
    # Fields in one form, multipart or JSON body: the largest request of the API has 7
    # (key, timestamp, token, typeId, img1, img2, file); 32 leaves room for extras that
    # clients add and we ignore, and bounds the work a body of many tiny fields causes.
    max_fields: int = 32
    # Header lines in one multipart part: browsers, curl and aiohttp send 1-3
    # (Content-Disposition, Content-Type, at times Content-Length).
    max_part_headers: int = 8
    # Bodies up to this size are parsed on the event loop, larger ones in a worker
    # process (service.api.body_parser). Parsing 1 MiB costs the loop at most ~5-7 ms
    # here (form or JSON with a base64 image; multipart ~1 ms): a fraction of the 20 ms
    # stall budget. The hand-over costs more CPU than it saves below that: typeId 21
    # with two ~190 KB JPEGs (a 540 KB form, 2.7 ms to parse) took ~8 ms more service
    # CPU per request through a worker (bench/face_compare.py --throughput).
    loop_parse_bytes: int = 1024 * 1024
    # Worker processes (and threads feeding them) for larger bodies: each parses a 10 MB
    # body in ~0.1 s, so 2 take ~20 such bodies a second, more than 2 cores can analyse.
    parse_workers: int = 2


@dataclass(frozen=True)
class FormField:
    """One field of a body: text (str) or the raw bytes of a file part."""

    name: str
    value: str | bytes


@dataclass(frozen=True)
class ContentType:
    """A media type and its parameters (names lowercased, quoted values unescaped)."""

    mime: str
    params: dict[str, str]

    def charset_is_utf8(self) -> bool:
        return self.params.get("charset", "utf-8").lower() in TEXT_CHARSETS


def malformed(field: str, hint: str) -> MalformedField:
    return MalformedField(field, "malformed", hint)


def parse_parameters(text: str, field: str) -> tuple[str, dict[str, str]]:
    """`type[/subtype] *(; name=value)` as in Content-Type and Content-Disposition."""
    head = _MEDIA_TYPE.match(text)
    if head is None:
        raise malformed(field, "unreadable header value")
    params: dict[str, str] = {}
    pos = head.end()
    while pos < len(text) and not _TRAILING_SEMICOLON.fullmatch(text, pos):
        param = _PARAMETER.match(text, pos)
        if param is None:
            raise malformed(field, "unreadable header parameters")
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
        if name in params:
            raise malformed(field, f"parameter {name} given twice")
        params[name] = value
        pos = param.end()
    return head.group(1).lower(), params


def parse_content_type(header: str | None) -> ContentType | None:
    """The request's Content-Type, or None when it sent none."""
    if header is None or not header.strip():
        return None
    mime, params = parse_parameters(header, "body")
    if "/" not in mime:
        raise malformed("body", "Content-Type is not a media type")
    return ContentType(mime, params)


def decode_utf8(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed(field, "not UTF-8 text") from None


def _check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_CHARS or _BAD_NAME.search(name):
        raise malformed("body", f"field names must be 1-{MAX_NAME_CHARS} printable characters")
    return name


def _count(fields: list[FormField], max_fields: int) -> None:
    if len(fields) > max_fields:
        raise malformed("body", f"more than {max_fields} fields")


def parse_urlencoded(body: bytes, max_fields: int) -> list[FormField]:
    """application/x-www-form-urlencoded (WHATWG URL standard, section 5.1): `&`-separated
    `name=value`, `+` for space, percent-escapes; names and values must be UTF-8."""
    fields: list[FormField] = []
    start = 0
    while start < len(body):  # found rather than split: one copy of each value, not three
        end = body.find(b"&", start)
        end = len(body) if end < 0 else end
        if end > start:
            equals = body.find(b"=", start, end)
            name_end = end if equals < 0 else equals
            name = _check_name(_unescape(body[start:name_end], "body"))
            fields.append(FormField(name, _unescape(body[name_end + 1:end], name)))
            _count(fields, max_fields)
        start = end + 1
    return fields


def _unescape(raw: bytes, field: str) -> str:
    return decode_utf8(percent_decode(raw.replace(b"+", b" ")), field)


def percent_decode(raw: bytes) -> bytes:
    """`%XX` -> the byte XX; a `%` not followed by two hex digits stays as it is (as
    urllib.parse.unquote_to_bytes, whose per-escape Python loop took 130 ms for a 10 MB
    base64 image, where a quarter million `%2B`/`%2F` escapes are usual).

    Vectorised: an escape's two digits are never `%`, so escapes cannot overlap and all
    can be found at once; each `%` becomes the byte and its two digits are dropped."""
    if b"%" not in raw:
        return raw
    data = np.frombuffer(raw, np.uint8)
    pct = np.flatnonzero(data[:-2] == ord("%"))
    high, low = _HEX_VALUE[data[pct + 1]], _HEX_VALUE[data[pct + 2]]
    valid = (high | low) < 16
    pct = pct[valid]
    out = data.copy()
    out[pct] = (high[valid] << 4) | low[valid]
    keep = np.ones(data.size, bool)
    keep[pct + 1] = False
    keep[pct + 2] = False
    return out[keep].tobytes()


def parse_multipart(body: bytes, content_type: ContentType, max_fields: int,
                    max_headers: int) -> list[FormField]:
    """multipart/form-data (RFC 7578 on RFC 2046 section 5.1): every part a named
    form-data field, a closing delimiter required, no nested multipart."""
    boundary = content_type.params.get("boundary", "")
    if not _BOUNDARY.fullmatch(boundary):
        raise malformed("body", "the multipart boundary must be 1-70 characters (RFC 2046)")
    dash = b"--" + boundary.encode("ascii")
    delimiter = b"\r\n" + dash
    if body.startswith(dash):
        pos = len(dash)
    else:  # skip the preamble
        first = body.find(delimiter)
        if first < 0:
            raise malformed("body", "no multipart boundary in the body")
        pos = first + len(delimiter)
    fields: list[FormField] = []
    while not body.startswith(b"--", pos):
        # transport padding, then CRLF, ends a delimiter line
        eol = body.find(b"\r\n", pos, pos + MAX_HEADER_LINE)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise malformed("body", "malformed multipart boundary line")
        end = body.find(delimiter, eol + 2)
        if end < 0:
            raise malformed("body", "no closing multipart boundary")
        fields.append(_parse_part(body, eol + 2, end, max_headers))
        _count(fields, max_fields)
        pos = end + len(delimiter)
    return fields  # what follows the closing delimiter is the epilogue, ignored


def _part_headers(head: bytes, max_headers: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n") if head else []:
        if len(line) > MAX_HEADER_LINE:
            raise malformed("body", "multipart header line too long")
        if line[:1] in (b" ", b"\t"):
            raise malformed("body", "folded multipart header lines are not accepted")
        if b"\r" in line or b"\n" in line:
            raise malformed("body", "multipart header lines must end with CRLF")
        name, sep, value = decode_utf8(line, "body").partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise malformed("body", "malformed multipart header line")
        name = name.lower()
        if name in headers:
            raise malformed("body", f"multipart header {name} given twice")
        headers[name] = value.strip(" \t")
        if len(headers) > max_headers:
            raise malformed("body", f"more than {max_headers} headers in a multipart part")
    return headers


def _parse_part(body: bytes, start: int, end: int, max_headers: int) -> FormField:
    """One body part, `body[start:end]`: headers, blank line, content (RFC 7578 section
    4.2-4.8). The content is the only copy made of a (possibly 10 MB) file part."""
    if body.startswith(b"\r\n", start, end):
        head, content_start = b"", start + 2
    else:
        split = body.find(b"\r\n\r\n", start,
                          min(end, start + (max_headers + 1) * (MAX_HEADER_LINE + 2)))
        if split < 0:
            raise malformed("body", "multipart part headers do not end")
        head, content_start = body[start:split], split + 4
    content = body[content_start:end]
    headers = _part_headers(head, max_headers)
    if "content-disposition" not in headers:
        raise malformed("body", "a multipart part without Content-Disposition")
    disposition, params = parse_parameters(headers["content-disposition"], "body")
    if disposition != "form-data" or "name" not in params:
        raise malformed("body", 'each part must be Content-Disposition: form-data; name="..."')
    name = _check_name(params["name"])
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding not in IDENTITY_ENCODINGS:
        raise malformed(name, "Content-Transfer-Encoding is not accepted (RFC 7578 4.7)")
    ctype = parse_content_type(headers.get("content-type"))
    if ctype is not None and ctype.mime.startswith("multipart/"):
        raise malformed(name, "nested multipart is not accepted (RFC 7578 4.3)")
    if ctype is not None and not ctype.charset_is_utf8():
        raise malformed(name, "only UTF-8 text is accepted")
    is_file = ("filename" in params or "filename*" in params
               or (ctype is not None and not ctype.mime.startswith("text/")))
    return FormField(name, content if is_file else decode_utf8(content, name))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise MalformedField(_check_name(name), "duplicate")
        out[name] = value
    return out


def _refuse_constant(name: str) -> None:
    raise malformed("body", f"{name} is not JSON (RFC 8259)")


def _check_depth(text: str, max_fields: int) -> None:
    """Refuse nesting deeper than the accepted schema before json.loads recurses into it
    (1000 nested lists raised RecursionError). Strings are cut out first so brackets
    inside them do not count; an object of `max_fields` lists has at most
    2 * (max_fields + 1) brackets, so the scan below is bounded too."""
    brackets = _JSON_BRACKET.findall(_JSON_STRING.sub('""', text))
    if len(brackets) > 2 * (max_fields + 1):
        raise malformed("body", f"more than {max_fields} fields or nested too deep")
    depth = 0
    for bracket in brackets:
        depth += 1 if bracket in "[{" else -1
        if depth > JSON_MAX_DEPTH:
            raise _too_deep()


def _too_deep() -> MalformedField:
    return malformed("body", "JSON nested too deep: send an object of strings, numbers or "
                             "lists of them")


def _few_brackets(text: str, max_fields: int) -> bool:
    """At most as many brackets, strings included, as the schema allows: json.loads then
    builds at most that many containers, so the string-aware scan of _check_depth (a
    regular expression over every string: 44 ms for a 10 MB base64 image) can wait
    until the parsed value is checked."""
    return sum(text.count(b) for b in "[]{}") <= 2 * (max_fields + 1)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def parse_json_object(body: bytes, max_fields: int) -> dict[str, Any]:
    """A JSON object (RFC 8259) of strings, numbers, booleans, nulls and lists of
    scalars: the only shape the session API takes. Duplicate names are refused."""
    text = decode_utf8(body, "body")
    few_brackets = _few_brackets(text, max_fields)
    if not few_brackets:
        _check_depth(text, max_fields)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates,
                           parse_constant=_refuse_constant)
    except ValueError:  # json.JSONDecodeError, and int() past its digit limit
        raise malformed("body", "not valid JSON") from None
    if few_brackets and _depth(value) > JSON_MAX_DEPTH:
        raise _too_deep()
    if not isinstance(value, dict):
        raise malformed("body", "expected a JSON object")
    if len(value) > max_fields:
        raise malformed("body", f"more than {max_fields} fields")
    for name, item in value.items():
        _check_name(name)
        if isinstance(item, dict) or (isinstance(item, list) and not all(
                isinstance(i, (str, int, float)) for i in item)):  # bool is an int
            raise malformed(name, "expected a string, a number or a list of them")
    return value
