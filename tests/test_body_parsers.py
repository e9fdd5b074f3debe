"""The strict body and SDP parsers on their own: what they accept, and seeded mutations
that may only ever end in the one error type of each (never a programming error)."""

from __future__ import annotations

import json
import random

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from service.api.forms import (
    ContentType,
    FormField,
    parse_content_type,
    parse_json_object,
    parse_multipart,
    parse_urlencoded,
)
from service.errors import BadMedia, MalformedField
from service.rtc.peer import NEGOTIATION_ERRORS
from service.rtc.sdp import trickle_candidates, validate_offer

MP = ContentType("multipart/form-data", {"boundary": "b0undary"})


def test_urlencoded_plus_percent_and_blank_values():
    assert parse_urlencoded(b"a=1+2&b=%C3%A9&&c&d=", 10) == [
        FormField("a", "1 2"), FormField("b", "é"), FormField("c", ""), FormField("d", "")]


@pytest.mark.parametrize("body, field", [(b"a=%ff", "a"), (b"%ff=1", "body"), (b"=1", "body"),
                                         (b"a=\xc3\x28", "a")])
def test_urlencoded_refuses_what_is_not_utf8_text(body, field):
    with pytest.raises(MalformedField, match=f"field: {field}"):
        parse_urlencoded(body, 10)


def test_multipart_with_preamble_padding_epilogue_text_and_file_parts():
    body = (b"preamble\r\n--b0undary  \r\n"
            b'Content-Disposition: form-data; name="say \\"hi\\""\r\n\r\nh\xc3\xa9llo\r\n'
            b"--b0undary\r\n"
            b'content-disposition: FORM-DATA; name=file; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\r\n\r\n"
            b"--b0undary\r\n"
            b'Content-Disposition: form-data; name="raw"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n\x00\x01"
            b"\r\n--b0undary--\r\nepilogue")
    assert parse_multipart(body, MP, 10, 8) == [
        FormField('say "hi"', "héllo"), FormField("file", b"\xff\xd8\r\n"),
        FormField("raw", b"\x00\x01")]


@pytest.mark.parametrize("header", [
    'multipart/form-data; boundary="b0undary"',
    "Multipart/Form-Data;boundary=b0undary;",
])
def test_content_type_parameters(header):
    assert parse_content_type(header) == MP


@pytest.mark.parametrize("boundary", ["", "a" * 71, "ends in space ", "bad\"quote", "é"])
def test_multipart_boundary_outside_rfc_2046_is_refused(boundary):
    with pytest.raises(MalformedField, match="boundary"):
        parse_multipart(b"", ContentType("multipart/form-data", {"boundary": boundary}), 10, 8)


def test_json_object_of_scalars_and_lists():
    assert parse_json_object(b'{"a": "x", "b": 2, "c": [1, "y"], "d": null}', 10) == {
        "a": "x", "b": 2, "c": [1, "y"], "d": None}


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a": [[1]]}', b'{"a": {"b": 1}}',
                                  b'{"a": 1, "a": 2}', b'{"a": Infinity}', b"[]", b"1",
                                  b'{"a": "[[[["}' + b"x" * 10, b'{"a": ' + b"9" * 5000 + b"}",
                                  b"\xff", b""])
def test_json_outside_the_schema_is_refused(body):
    with pytest.raises(MalformedField):
        parse_json_object(body, 10)


def test_brackets_inside_json_strings_do_not_count_as_nesting():
    assert parse_json_object(b'{"a": "[[[[{{{{\\"]]"}', 10) == {"a": '[[[[{{{{"]]'}


def _mutations(rng: random.Random, data: bytes, count: int) -> list[bytes]:
    pieces = [b"\r\n", b"--", b"--b0undary", b"\"", b";", b"=", b":", b" ", b"\xff", b"\x00",
              b"\r\n\r\n", b"name=", b"Content-Type: multipart/mixed", b"%", b"&", b"[", b"{"]
    out = []
    for _ in range(count):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(mutated) + 1)
            if rng.random() < 0.5:
                del mutated[pos:pos + rng.randint(1, 8)]
            else:
                mutated[pos:pos] = rng.choice(pieces)
        out.append(bytes(mutated))
    return out


def test_mutated_bodies_only_ever_raise_malformed_field():
    rng = random.Random(10)
    multipart = (b'--b0undary\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n'
                 b'--b0undary\r\nContent-Disposition: form-data; name="img"; filename="x"\r\n'
                 b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--b0undary--\r\n")
    form = b"key=k&timestamp=1&token=ab%20cd&img=QUJD+%2B"
    document = json.dumps({"key": "k", "ttl": 30, "challenges": ["blink", "mouth"]}).encode()
    for body in _mutations(rng, multipart, 700):
        try:
            parse_multipart(body, MP, 10, 8)
        except MalformedField:
            pass
    for body in _mutations(rng, form, 300):
        try:
            parse_urlencoded(body, 10)
        except MalformedField:
            pass
    for body in _mutations(rng, document, 500):
        try:
            parse_json_object(body, 10)
        except MalformedField:
            pass


FRAGMENT = ("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\n"
            "a=mid:0\r\na=candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host\r\n"
            "a=candidate:2 1 tcp 1694498815 192.0.2.3 9 typ srflx raddr 10.0.1.1 rport 0 "
            "tcptype active generation 0\r\na=end-of-candidates\r\n")


def test_trickle_fragment_candidates_keep_their_mid():
    parsed = trickle_candidates(FRAGMENT, 8)
    assert [(c.mid, c.candidate.ip, c.candidate.port) for c in parsed] == [
        ("0", "10.0.1.1", 8998), ("0", "192.0.2.3", 9)]
    assert parsed[1].candidate.tcpType == "active"


OFFER = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
             "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=mid:0\r\n"
             "a=rtcp-mux\r\na=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack pli\r\n"
             "a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\na=ssrc:1 cname:x\r\n"
             "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=ice-ufrag:EsAw\r\n"
             "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n"
             "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:"
             "3D:2F:2B:11:07:F7:C2:5C:D8:4C:81:37\r\na=setup:actpass\r\n"
             "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\n"
             "a=sctp-port:5000\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n"
             "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:"
             "3D:2F:2B:11:07:F7:C2:5C:D8:4C:81:37\r\na=setup:actpass\r\n")


def test_mutated_fragments_only_ever_raise_malformed_field():
    rng = random.Random(11)
    for text in _mutations(rng, FRAGMENT.encode(), 500):
        try:
            trickle_candidates(text.decode("utf-8", "replace"), 8)
        except MalformedField:
            pass


SDP_TOKENS = ["", "x", "-1", "0", "99999999999", "\x00", "é", "²", ":", "/", " ", "a=", "97",
              "IN", "IP4", "*", "apt=x", "apt=99", "rtx/90000", "VP8", "H264/90000", "typ",
              "host", "udp", "1.2.3.4", "::1", "a.local", "actpass", "holdconn", "{x}"]
SDP_ATTRIBUTES = ["candidate", "mid", "msid", "rtpmap", "fmtp", "rtcp-fb", "ssrc", "ssrc-group",
                  "group", "setup", "fingerprint", "extmap", "rtcp", "sctp-port", "sendrecv",
                  "recvonly", "inactive", "rtcp-mux", "ice-lite", "end-of-candidates"]


def _line_mutations(rng: random.Random, text: str, count: int) -> list[str]:
    """Drop, repeat, cut, swap lines; replace a token; insert an attribute line."""
    out = []
    for _ in range(count):
        lines = text.splitlines()
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            op = rng.randrange(6)
            if op == 0 and len(lines) > 1:
                del lines[i]
            elif op == 1:
                lines.insert(i, rng.choice(lines))
            elif op == 2:
                lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
            elif op == 3:
                tokens = lines[i].split(" ")
                tokens[rng.randrange(len(tokens))] = rng.choice(SDP_TOKENS)
                lines[i] = " ".join(tokens)
            elif op == 4:
                j = rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            else:
                value = " ".join(rng.choice(SDP_TOKENS) for _ in range(rng.randint(0, 4)))
                lines.insert(i, f"a={rng.choice(SDP_ATTRIBUTES)}:{value}")
        out.append("\r\n".join(lines) + "\r\n")
    return out


async def test_mutated_offers_are_refused_or_negotiate():
    """A seeded fuzz of edits to an offer: each is refused with BadMedia (4002), or
    aiortc takes it and answers, or refuses it with its documented negotiation errors;
    nothing else may escape (its parser raised IndexError, AssertionError, StopIteration
    and its track-id lookup IndexError on offers like these)."""
    rng = random.Random(12)
    validate_offer(OFFER, 8, 8)
    accepted = 0
    for text in _line_mutations(rng, OFFER, 1500):
        try:
            validate_offer(text, 8, 8)
        except BadMedia:
            continue
        accepted += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(text, "offer"))
            await pc.createAnswer()
        except NEGOTIATION_ERRORS:
            pass
        finally:
            await pc.close()
    assert accepted > 200  # the mutations do reach aiortc
