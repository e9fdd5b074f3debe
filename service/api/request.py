"""Read a vendor request: the body in memory, its fields, base64 or file parts, auth fields.

The vendor clients send base64 strings (sometimes as data URLs, often wrapped at 76
columns); newer integrations upload files as multipart parts. Both arrive here as one
`VerifyRequest` whose media fields are raw bytes, so handlers never see transport details.

The body is read by us, bounded, and parsed by service.api.forms: nothing touches the
disk, and every malformed body answers 4001 naming the field. A large body is parsed,
hashed and base64-decoded in a worker process (service.api.body_parser), never on the
event loop that carries the live sessions (a 10 MB form once held it for ~450 ms;
tests/test_loop_stalls.py); the parsers keep their byte work in C calls of at most
~1 MiB each, so the CPU they cost is ~5-10 ms per MiB. A field sent twice is
refused (4001 "duplicate field"): which copy counts would otherwise be the parser's
choice, and the replay fingerprint must describe exactly what was verified.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from service.api.forms import (
    ContentType,
    FormField,
    FormSettings,
    decode_utf8,
    parse_content_type,
    parse_json_object,
    parse_multipart,
    parse_urlencoded,
)
from service.errors import MalformedField, TooLarge

AUTH_FIELDS = ("key", "timestamp", "token", "typeId")
# One pass over base64 text: whitespace (what a bytes regex calls \s) dropped, URL-safe
# -_ read as +/ (translating them where there are none changes nothing).
_BASE64_TABLE = bytes.maketrans(b"-_", b"+/")
_BASE64_WHITESPACE = b" \t\n\r\x0b\x0c"
# Bytes of base64 text handled per C call (~2 ms here): a 10 MB image would hold the
# GIL for 20-40 ms in one binascii call, and the event loop would wait for it.
BASE64_CHUNK = 1 << 20
_DATA_URL = re.compile(rb"^data:[^,]*?;base64,", re.IGNORECASE)
_TYPE_ID = re.compile(r"[0-9]{1,9}")
FORM, MULTIPART, JSON = ("application/x-www-form-urlencoded", "multipart/form-data",
                         "application/json")


@dataclass
class VerifyRequest:
    fields: dict[str, str]
    media: dict[str, bytes] = field(default_factory=dict)
    body_digest: str = ""
    raw: bytes = b""  # the body as received (a session creation forwarded to its owner)

    def text(self, name: str) -> str:
        """The field exactly as sent (a padded token is a wrong token, spec section 1)."""
        value = self.fields.get(name, "")
        if not value.strip():
            raise MalformedField(name)
        return value

    def media_bytes(self, *names: str) -> tuple[str, bytes]:
        """The first of `names` that was sent, as (field name, bytes)."""
        for name in names:
            if name in self.media:
                return name, self.media[name]
        raise MalformedField(names[0])

    def type_id(self) -> int:
        """A decimal number of at most 9 digits (int() would also take `2_1`, other
        scripts' digits and thousands of digits, echoed back by the 4006 answer)."""
        raw = self.text("typeId").strip()
        if not _TYPE_ID.fullmatch(raw):
            raise MalformedField("typeId", "malformed")
        return int(raw)


def decode_base64(name: str, text: str | bytes) -> bytes:
    """Decode standard or URL-safe base64, with or without a data: prefix or padding.

    As strict as base64.b64decode(validate=True) on the whole text (padding only at the
    end, nothing outside the alphabet), decoded BASE64_CHUNK bytes at a time."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    raw = b"".join(raw[i:i + BASE64_CHUNK].translate(_BASE64_TABLE, _BASE64_WHITESPACE)
                   for i in range(0, len(raw), BASE64_CHUNK))
    prefix = _DATA_URL.match(raw)
    if prefix:
        raw = raw[prefix.end():]
    if not raw:
        raise MalformedField(name)
    # The last chunk holds the last character that is not padding, and all that follows:
    # padding anywhere before it is padding followed by data, which the whole-text
    # decoding refuses too. BASE64_CHUNK is a multiple of 4, so chunks start at groups.
    tail = raw[-8:]
    data_end = (len(raw) - len(tail) + len(tail.rstrip(b"=")) if tail.rstrip(b"=")
                else len(raw.rstrip(b"=")))  # a copy only for a long run of padding
    last = max(0, data_end - 1) // BASE64_CHUNK * BASE64_CHUNK
    if raw.find(b"=", 0, last) >= 0:
        raise MalformedField(name, "malformed base64 in")
    padding = b"=" * (-len(raw) % 4)
    try:
        data = b"".join([*(binascii.a2b_base64(raw[i:i + BASE64_CHUNK], strict_mode=True)
                           for i in range(0, last, BASE64_CHUNK)),
                         binascii.a2b_base64(raw[last:] + padding, strict_mode=True)])
    except binascii.Error:
        raise MalformedField(name, "malformed base64 in") from None
    if not data:
        raise MalformedField(name)
    return data


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, in memory, refused (4013) past `max_bytes`: counted as it arrives,
    so chunked bodies and compressed ones (counted decompressed) are bounded too.

    A body whose chunked framing or Content-Encoding is broken fails inside aiohttp's
    stream (RequestPayloadError), as does one that arrives too slowly; those leave the
    connection unusable, so the envelope middleware answers them, closing it.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def read_text(body: bytes) -> str:
    """A text body (SDP): UTF-8 only."""
    return decode_utf8(body, "body")


def _from_form(fields: list[FormField], media_fields: tuple[str, ...]) -> VerifyRequest:
    """Text fields stay text, media text fields are base64, file parts stay bytes. The
    digest covers every field by name order, so a replay is caught whatever the order."""
    digest = hashlib.sha256()
    out = VerifyRequest(fields={})
    seen: set[str] = set()
    for item in sorted(fields, key=lambda f: f.name):
        name, value = item.name, item.value
        if name in seen:
            raise MalformedField(name, "duplicate")
        seen.add(name)
        data = value if isinstance(value, bytes) else value.encode()
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        if isinstance(value, bytes):
            if value:
                out.media[name] = value
        elif name in media_fields:
            if value.strip():
                out.media[name] = decode_base64(name, data)
        else:
            out.fields[name] = value
    out.body_digest = digest.hexdigest()
    return out


def _from_json(body: bytes, media_fields: tuple[str, ...], max_fields: int) -> VerifyRequest:
    """A JSON object body (the session API accepts it besides forms): strings and numbers
    become fields, lists become comma-joined fields, media fields are base64."""
    out = VerifyRequest(fields={}, body_digest=hashlib.sha256(body).hexdigest())
    for name, value in parse_json_object(body, max_fields).items():
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        if name in media_fields:
            if text.strip():
                out.media[name] = decode_base64(name, text)
        else:
            out.fields[name] = text
    return out


class Authenticate(Protocol):
    """The check of a signed request (service.http.auth.Authenticator, handed to the
    handlers by the composition root, service/app.py)."""

    async def verify(self, client: str, key: str, timestamp: str, token: str,
                     body_digest: str) -> None: ...


class BodyParsing(Protocol):
    """Where bodies over `forms.loop_parse_bytes` are parsed (service.api.body_parser)."""

    async def parse(self, body: bytes, ctype: ContentType, media_fields: tuple[str, ...]
                    ) -> VerifyRequest: ...


BODY_PARSER = web.AppKey("body_parser", BodyParsing)


def parse_request(body: bytes, ctype: ContentType, media_fields: tuple[str, ...],
                  limits: FormSettings) -> VerifyRequest:
    """The fields of a form, multipart or JSON body (a content type read_request took)."""
    if ctype.mime == JSON:
        return _from_json(body, media_fields, limits.max_fields)
    fields = (parse_urlencoded(body, limits.max_fields) if ctype.mime == FORM else
              parse_multipart(body, ctype, limits.max_fields, limits.max_part_headers))
    return _from_form(fields, media_fields)


async def read_request(request: web.Request, media_fields: tuple[str, ...], max_bytes: int,
                       forms: FormSettings, allow_json: bool = False, keep_raw: bool = False
                       ) -> VerifyRequest:
    """Read fields from a form, multipart (or, with `allow_json`, JSON) body of at most
    `max_bytes` (the root config's max_request_bytes); media fields become bytes. A file part is kept under its own name (`file` included) and
    handlers decide which field it stands for. Bodies over `forms.loop_parse_bytes` are
    parsed in a worker process (the app's BODY_PARSER), off the event loop."""
    ctype = parse_content_type(request.headers.get("Content-Type"))
    accepted = (FORM, MULTIPART, JSON) if allow_json else (FORM, MULTIPART)
    if ctype is None or ctype.mime not in accepted:
        got = "no content type" if ctype is None else ctype.mime[:40]
        raise MalformedField("body", "malformed", f"expected a form or multipart body"
                             f"{' or JSON' if allow_json else ''}, got {got}")
    if ctype.mime != MULTIPART and not ctype.charset_is_utf8():
        raise MalformedField("body", "malformed", "only UTF-8 is accepted")
    body = await read_body(request, max_bytes)
    if len(body) <= forms.loop_parse_bytes:
        out = parse_request(body, ctype, media_fields, forms)
    else:
        out = await request.app[BODY_PARSER].parse(body, ctype, media_fields)
    if keep_raw:  # else the body is freed once parsed (it may be 10 MB)
        out.raw = body
    return out
