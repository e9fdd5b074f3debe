"""Parse a vendor request: form or multipart fields, base64 or file parts, auth fields.

The vendor clients send base64 strings (sometimes as data URLs, often wrapped at 76
columns); newer integrations upload files as multipart parts. Both arrive here as one
`VerifyRequest` whose media fields are raw bytes, so handlers never see transport details.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_request import FileField

from service.errors import MalformedField, TooLarge

AUTH_FIELDS = ("key", "timestamp", "token", "typeId")
_WHITESPACE = re.compile(rb"\s+")
_DATA_URL = re.compile(rb"^data:[^,]*?;base64,", re.IGNORECASE)


@dataclass
class VerifyRequest:
    fields: dict[str, str]
    media: dict[str, bytes] = field(default_factory=dict)
    body_digest: str = ""

    def text(self, name: str) -> str:
        value = self.fields.get(name, "").strip()
        if not value:
            raise MalformedField(name)
        return value

    def media_bytes(self, *names: str) -> tuple[str, bytes]:
        """The first of `names` that was sent, as (field name, bytes)."""
        for name in names:
            if name in self.media:
                return name, self.media[name]
        raise MalformedField(names[0])

    def type_id(self) -> int:
        raw = self.text("typeId")
        try:
            return int(raw)
        except ValueError:
            raise MalformedField("typeId", "malformed") from None


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


async def _read_json(request: web.Request, media_fields: tuple[str, ...]) -> VerifyRequest:
    """A JSON object body (the session API accepts it besides forms): strings and numbers
    become fields, lists become comma-joined fields, media fields are base64."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedField("body", "malformed", "not valid JSON") from None
    if not isinstance(body, dict):
        raise MalformedField("body", "malformed", "expected a JSON object")
    out = VerifyRequest(fields={}, body_digest=hashlib.sha256(raw).hexdigest())
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if name in media_fields:
            if str(value).strip():
                out.media[name] = decode_base64(name, str(value))
        else:
            out.fields[name] = str(value)
    return out


async def read_request(request: web.Request, media_fields: tuple[str, ...],
                       max_bytes: int, allow_json: bool = False) -> VerifyRequest:
    """Read fields from a form or multipart body; media fields become bytes.

    Media fields may be text (base64) or file parts; a file part named `file` is kept
    under that name and handlers decide which field it stands for.
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"request body is larger than {max_bytes} bytes")
    ctype = request.content_type
    if allow_json and ctype == "application/json":
        return await _read_json(request, media_fields)
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise MalformedField("body", "malformed", f"expected a form or multipart body, "
                             f"got {ctype or 'no content type'}")
    form = await request.post()
    digest = hashlib.sha256()
    out = VerifyRequest(fields={})
    for name in sorted(set(form.keys())):
        value = form.get(name)
        if isinstance(value, FileField):
            data = value.file.read()
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            if data:
                out.media[name] = data
            continue
        text = str(value)
        digest.update(name.encode() + b"\0" + hashlib.sha256(text.encode()).digest())
        if name in media_fields:
            if text.strip():
                out.media[name] = decode_base64(name, text)
        else:
            out.fields[name] = text
    out.body_digest = digest.hexdigest()
    return out
