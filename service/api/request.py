"""Read a vendor request: the body in memory, its fields, base64 or file parts, auth fields.

The vendor clients send base64 strings (sometimes as data URLs, often wrapped at 76
columns); newer integrations upload files as multipart parts. Both arrive here as one
`VerifyRequest` whose media fields are raw bytes, so handlers never see transport details.

The body is read by us, bounded, and parsed by service.api.forms: nothing touches the
disk, and every malformed body answers 4001 naming the field. A field sent twice is
refused (4001 "duplicate field"): which copy counts would otherwise be the parser's
choice, and the replay fingerprint must describe exactly what was verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from service.api.forms import (
    FormField,
    decode_utf8,
    parse_content_type,
    parse_json_object,
    parse_multipart,
    parse_urlencoded,
)
from service.errors import MalformedField, TooLarge

if TYPE_CHECKING:  # annotations only: service.config imports the components' modules
    from service.config import Config

AUTH_FIELDS = ("key", "timestamp", "token", "typeId")
_WHITESPACE = re.compile(rb"\s+")
_DATA_URL = re.compile(rb"^data:[^,]*?;base64,", re.IGNORECASE)
_TYPE_ID = re.compile(r"[0-9]{1,9}")
FORM, MULTIPART, JSON = ("application/x-www-form-urlencoded", "multipart/form-data",
                         "application/json")


@dataclass
class VerifyRequest:
    fields: dict[str, str]
    media: dict[str, bytes] = field(default_factory=dict)
    body_digest: str = ""

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
    """Decode standard or URL-safe base64, with or without a data: prefix or padding."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    raw = _DATA_URL.sub(b"", _WHITESPACE.sub(b"", raw))
    if not raw:
        raise MalformedField(name)
    if b"-" in raw or b"_" in raw:
        raw = raw.translate(bytes.maketrans(b"-_", b"+/"))
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
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
                out.media[name] = decode_base64(name, value)
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


async def read_request(request: web.Request, media_fields: tuple[str, ...], config: Config,
                       allow_json: bool = False) -> VerifyRequest:
    """Read fields from a form, multipart (or, with `allow_json`, JSON) body; media
    fields become bytes. A file part is kept under its own name (`file` included) and
    handlers decide which field it stands for."""
    ctype = parse_content_type(request.headers.get("Content-Type"))
    accepted = (FORM, MULTIPART, JSON) if allow_json else (FORM, MULTIPART)
    if ctype is None or ctype.mime not in accepted:
        got = "no content type" if ctype is None else ctype.mime[:40]
        raise MalformedField("body", "malformed", f"expected a form or multipart body"
                             f"{' or JSON' if allow_json else ''}, got {got}")
    if ctype.mime != MULTIPART and not ctype.charset_is_utf8():
        raise MalformedField("body", "malformed", "only UTF-8 is accepted")
    body = await read_body(request, config.max_request_bytes)
    if ctype.mime == JSON:
        return _from_json(body, media_fields, config.forms.max_fields)
    if ctype.mime == FORM:
        fields = parse_urlencoded(body, config.forms.max_fields)
    else:
        fields = parse_multipart(body, ctype, config.forms.max_fields, config.forms.max_part_headers)
    return _from_form(fields, media_fields)
