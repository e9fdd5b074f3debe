"""Validate WHIP offers and trickle fragments before any peer connection sees them.

aiortc's SDP parser trusts its input: a truncated `m=` or candidate line, an rtpmap
without a clock rate or an fmtp for a payload type with no rtpmap raise from deep
inside it (an AssertionError, IndexError, or a StopIteration that turns into a
RuntimeError inside a coroutine), and an offer without `a=mid` failed even in the
peer connection's close(). So each line aiortc parses is checked against its grammar
first (RFC 8866 SDP, RFC 8839 ICE attributes, RFC 8843 BUNDLE, RFC 4145/8122 DTLS
setup and fingerprint, RFC 4588 rtx, RFC 8841 SCTP), then the text is parsed with
aiortc's own parser and the result checked for what a session needs (a video track it
can decode, a mid per section). Offers answer 4002 "bad SDP offer: <reason>";
trickle candidates (RFC 8840 sdpfrag in a WHIP PATCH, RFC 9725 section 4.3) 4001
naming `candidate` or `mid`. Reasons name the attribute, never echo the input.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from aiortc import RTCIceCandidate
from aiortc.rtp import FORBIDDEN_PAYLOAD_TYPES
from aiortc.sdp import FMTP_INT_PARAMETERS, MediaDescription, SessionDescription, candidate_from_sdp

from service.errors import BadMedia, MalformedField


@dataclass(frozen=True)
class SdpSettings:
    # A WHIP offer or trickle fragment: aiortc's and browsers' offers with audio, video
    # and a data channel are 2-8 KB; 64 KiB leaves room for many codecs and candidates
    # and keeps SDP parsing cheap.
    max_bytes: int = 64 * 1024
    # m= sections in one offer (audio, video and the data channel make 3), and ICE
    # candidates in one offer or PATCH (a browser gathers 2-10): every remote candidate
    # costs connectivity checks, STUN packets sent to the address it names.
    max_media: int = 8
    max_candidates: int = 32


# What aiortc's SessionDescription.parse raises on a line it cannot read (int() of
# text, tuple unpacking, its asserts, a setup role lookup, an fmtp for an unknown
# payload type, an attribute without a value). The grammar below is meant to keep
# every one of them from happening; this is the parser's own verdict as a backstop.
PARSER_ERRORS = (ValueError, IndexError, KeyError, AssertionError, StopIteration,
                 AttributeError, TypeError)

# RFC 8866 section 9: token-char (wider than HTTP's: Firefox's msid has braces).
_TOKEN = r"[\x21\x23-\x27\x2A\x2B\x2D\x2E\x30-\x39\x41-\x5A\x5E-\x7E]"
_ICE_CHARS = r"[A-Za-z0-9+/]"
# Values of the attributes aiortc's parser reads (RFC 8866 section 6 and the RFCs
# cited above); attributes it ignores are not checked.
ATTRIBUTE_GRAMMAR = {
    "mid": re.compile(rf"{_TOKEN}{{1,32}}"),
    "msid": re.compile(rf"{_TOKEN}{{1,64}}(?: {_TOKEN}{{1,64}})?"),  # RFC 8830
    "ice-ufrag": re.compile(rf"{_ICE_CHARS}{{4,256}}"),
    "ice-pwd": re.compile(rf"{_ICE_CHARS}{{22,256}}"),
    "setup": re.compile(r"actpass|active|passive"),
    "fingerprint": re.compile(rf"{_TOKEN}+ [0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}})+"),
    "group": re.compile(rf"{_TOKEN}+(?: {_TOKEN}+)*"),
    "msid-semantic": re.compile(r" ?\S+(?: \S+)*"),
    "extmap": re.compile(r"[0-9]{1,3}(?:/(?:sendonly|recvonly|sendrecv|inactive))? \S+"),
    "rtpmap": re.compile(r"[0-9]{1,3} [^/ ]+/[0-9]{1,6}(?:/[0-9]{1,2})?"),
    "fmtp": re.compile(r"[0-9]{1,3} \S.*"),
    "rtcp-fb": re.compile(r"(?:[0-9]{1,3}|\*) \S+(?: \S.*)?"),
    "rtcp": re.compile(r"[0-9]{1,5}(?: IN IP[46] \S+)?"),
    "ssrc": re.compile(r"[0-9]{1,10} [^ :]+:.*"),
    "ssrc-group": re.compile(r"\S+(?: [0-9]{1,10})+"),
    "sctp-port": re.compile(r"[0-9]{1,5}"),
    "sctpmap": re.compile(r"[0-9]{1,5} \S.*"),
    "max-message-size": re.compile(r"[0-9]{1,10}"),
}
_LINE = re.compile(r"([a-z])=(.*)")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_CONNECTION = re.compile(r"IN IP[46] \S+")
_MEDIA = re.compile(r"(audio|video|application) ([0-9]{1,5}) ([A-Z/]+)((?: \S+)+)")
_HOSTNAME = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")
_DIGITS = re.compile(r"[0-9]{1,10}")
_FOUNDATION = re.compile(rf"{_ICE_CHARS}{{1,32}}")
# The video codecs the analysis takes (the answer offers these, with rtx, only).
ANALYSED_CODECS = ("video/VP8", "video/H264")
_ANALYSED = {c.lower() for c in ANALYSED_CODECS}
# Format parameters aiortc reads as integers (the H.264 packetization mode when it
# matches codecs): `name=<digits>` where present.
INTEGER_FORMAT_PARAMETERS = {*FMTP_INT_PARAMETERS, "packetization-mode"}
MAX_PRIORITY = 2**31 - 1  # RFC 8445 section 5.1.2


@dataclass(frozen=True)
class TrickleCandidate:
    mid: str | None
    candidate: RTCIceCandidate


def _offer_error(reason: str) -> BadMedia:
    return BadMedia(f"bad SDP offer: {reason}")


def _number(text: str, low: int, high: int) -> bool:
    """ASCII digits only (str.isdigit also takes superscripts, which int() refuses)."""
    return _DIGITS.fullmatch(text) is not None and low <= int(text) <= high


def _port(text: str) -> bool:
    return _number(text, 0, 65535)


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return len(text) <= 253 and _HOSTNAME.fullmatch(text) is not None
    return True


def candidate_problem(value: str) -> str | None:
    """What is wrong with an `a=candidate:` value (RFC 8839 section 5.1), or None.
    Tokens are split as aiortc's candidate_from_sdp splits them."""
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ" or len(bits) % 2:
        return "expected: foundation component transport priority address port typ type"
    foundation, component, transport, priority, address, port, _, kind = bits[:8]
    if not _FOUNDATION.fullmatch(foundation):
        return "bad foundation"
    if not _number(component, 1, 256):
        return "component must be 1..256"
    if transport.lower() not in ("udp", "tcp"):
        return "transport must be UDP or TCP"
    if not _number(priority, 1, MAX_PRIORITY):
        return "priority must be an integer 1..2^31-1"
    if not _address(address):
        return "bad connection address"
    if not _port(port):
        return "port must be 0..65535"
    if kind not in ("host", "srflx", "prflx", "relay"):
        return "unknown candidate type"
    extensions = dict(zip(bits[8::2], bits[9::2]))
    if "raddr" in extensions and not _address(extensions["raddr"]):
        return "bad raddr"
    if "rport" in extensions and not _port(extensions["rport"]):
        return "rport must be 0..65535"
    if extensions.get("tcptype", "active") not in ("active", "passive", "so"):
        return "tcptype must be active, passive or so"
    return None


def _check_line(kind: str, value: str) -> str | None:
    """What is wrong with one line's value, or None (only the lines aiortc reads)."""
    if kind == "c":
        return None if _CONNECTION.fullmatch(value) else "malformed c= line"
    if kind == "m":
        media = _MEDIA.fullmatch(value)
        if media is None or not _port(media.group(2)):
            return "malformed m= line"
        if media.group(1) != "application":
            for pt in media.group(4).split():
                if not _number(pt, 0, 127) or int(pt) in FORBIDDEN_PAYLOAD_TYPES:
                    return "bad payload type in m= line"
        return None
    if kind != "a":
        return None
    name, _, attr_value = value.partition(":")
    if name == "candidate":
        problem = candidate_problem(attr_value)
        return None if problem is None else f"bad a=candidate ({problem})"
    grammar = ATTRIBUTE_GRAMMAR.get(name)
    if grammar is not None and not grammar.fullmatch(attr_value):
        return f"malformed a={name} line"
    if name == "fmtp":
        for param in attr_value.split(" ", 1)[1].split(";"):
            key, _, number = param.partition("=")
            if key in INTEGER_FORMAT_PARAMETERS and not _number(number, 0, 2**31):
                return f"a=fmtp {key} must be an integer"
    return None


def _check_lines(text: str, max_candidates: int) -> None:
    lines = text.splitlines()  # as aiortc splits them
    if not lines or lines[0] != "v=0":
        raise _offer_error("not an SDP offer (no v=0 line)")
    candidates = 0
    sections: list[tuple[set[str], set[str]]] = []  # per m=: rtpmap and fmtp payload types
    for line in lines:
        if not line:
            continue
        parsed = _LINE.fullmatch(line)
        if parsed is None or _CONTROL.search(line):
            raise _offer_error("a line is not <type>=<value>")
        problem = _check_line(parsed.group(1), parsed.group(2))
        if problem is not None:
            raise _offer_error(problem)
        if line.startswith("m="):
            sections.append((set(), set()))
        elif sections and line.startswith(("a=rtpmap:", "a=fmtp:")):
            pt = line.partition(":")[2].split(" ", 1)[0]
            sections[-1][line.startswith("a=fmtp:")].add(pt)
        candidates += line.startswith("a=candidate:")
    if candidates > max_candidates:
        raise _offer_error(f"more than {max_candidates} candidates")
    if any(not fmtp <= rtpmap for rtpmap, fmtp in sections):
        raise _offer_error("an a=fmtp line for a payload type without a=rtpmap")


def _check_session(offer: SessionDescription, max_media: int) -> None:
    """What a session needs from a parsed offer (and what aiortc assumes of it)."""
    if not 1 <= len(offer.media) <= max_media:
        raise _offer_error(f"expected 1 to {max_media} media sections")
    mids = [m.rtp.muxId for m in offer.media]
    if not all(mids):
        raise _offer_error("every media section needs a=mid (RFC 8843)")
    if len(set(mids)) != len(mids):
        raise _offer_error("two media sections share a mid")
    for group in offer.group:
        if group.semantic == "BUNDLE" and not set(map(str, group.items)) <= set(mids):
            raise _offer_error("a=group:BUNDLE names an unknown mid")
    if sum(m.kind == "application" for m in offer.media) > 1:
        raise _offer_error("more than one data channel section")
    for media in offer.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise _offer_error("a=ice-ufrag and a=ice-pwd are required (RFC 8839)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise _offer_error("a=setup and a=fingerprint are required (RFC 8122)")
        if media.kind == "application":
            _check_data_channel(media)
        else:
            _check_rtp(media)
    if not any(m.kind == "video" and m.direction in (None, "sendrecv", "sendonly")
               and any(c.mimeType.lower() in _ANALYSED for c in m.rtp.codecs)
               for m in offer.media):
        raise _offer_error("the offer sends no VP8 or H.264 video; send the camera "
                           "as a video track")


def _check_data_channel(media: MediaDescription) -> None:
    if media.profile == "UDP/DTLS/SCTP":
        if media.sctp_port is None or not _port(str(media.sctp_port)):
            raise _offer_error("a=sctp-port 0..65535 is required (RFC 8841)")
    elif media.profile != "DTLS/SCTP" or not _number(str(media.fmt[0]), 0, 65535):
        raise _offer_error("unsupported data channel profile")


def _check_rtp(media: MediaDescription) -> None:
    if not media.rtcp_mux:
        raise _offer_error("a=rtcp-mux is required (RFC 8858)")
    mapped = [c.payloadType for c in media.rtp.codecs]
    if len(set(mapped)) != len(mapped) or not set(mapped) <= set(media.fmt):
        raise _offer_error("a=rtpmap payload types do not match the m= line")
    for codec in media.rtp.codecs:
        if codec.mimeType.lower().endswith("/rtx"):
            apt = codec.parameters.get("apt")
            if not isinstance(apt, int) or apt not in mapped:
                raise _offer_error("an rtx codec without a valid apt (RFC 4588)")


def validate_offer(text: str, max_media: int, max_candidates: int) -> None:
    """Check a WHIP offer; raise BadMedia (4002) with a short reason."""
    _check_lines(text, max_candidates)
    try:
        offer = SessionDescription.parse(text)
    except PARSER_ERRORS:
        raise _offer_error("aiortc cannot parse it") from None
    _check_session(offer, max_media)


def trickle_candidates(sdpfrag: str, max_candidates: int) -> list[TrickleCandidate]:
    """The `a=candidate` lines of a trickle fragment (RFC 8840), each under the
    `a=mid` before it; a bad line raises MalformedField (4001)."""
    out: list[TrickleCandidate] = []
    mid = None
    for line in sdpfrag.splitlines():
        line = line.strip()
        if line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
            if not ATTRIBUTE_GRAMMAR["mid"].fullmatch(mid):
                raise MalformedField("mid", "malformed", "a=mid must be a token of 1-32 characters")
        elif line.startswith("a=candidate:"):
            value = line[len("a=candidate:"):]
            problem = candidate_problem(value)
            if problem is not None:
                raise MalformedField("candidate", "malformed", problem)
            out.append(TrickleCandidate(mid, candidate_from_sdp(value)))
            if len(out) > max_candidates:
                raise MalformedField("candidate", "malformed",
                                     f"more than {max_candidates} in one fragment")
    return out
