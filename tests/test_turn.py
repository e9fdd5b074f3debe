"""Media through a TURN relay: a client that may only use relay candidates reaches the
service through a real coturn on loopback, and its session is decided.

This is the path of a browser behind a strict NAT, and of the Kubernetes deployment
(README "Scaling out"), where the replicas have no public UDP port and all media
crosses coturn. coturn runs with a shared secret (`use-auth-secret`): each session
answer carries TURN credentials of its own that expire with the session
(service/rtc/turn.py); the client takes them from the answer, as the web page does.
Expired and forged credentials get no relay from the same coturn.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aioice import stun
from aioice import turn as aioice_turn
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection
from conftest import KEY, SECRET, data_bytes, make_config, start_server, status_of

from service.app import session_manager
from service.config import load_config
from service.rtc.peer import IceServer, parse_ice_server, parse_ice_servers
from service.rtc.routes import MANAGER
from service.rtc.turn import TurnSettings, for_session, rest_credentials
from testing.rtc_client import ClipTrack, WhipClient, create_session
from testing.videos import decode_all

TURNSERVER = shutil.which("turnserver")
# coturn's static-auth-secret, shared with the service (turn.secret)
TURN_SECRET = "turn-shared-secret-for-tests"
REALM = "verify.test"
START_TIMEOUT_S = 15.0
GRACE_S = 10.0


def test_turn_credentials_are_taken_off_the_url():
    server = parse_ice_server("turn:ops%40site:p%40ss%3Aw%2Cd@turn.example.com:3478"
                              "?transport=udp")
    assert server == IceServer("turn:turn.example.com:3478?transport=udp",
                               "ops@site", "p@ss:w,d")
    assert server.to_json() == {"urls": ["turn:turn.example.com:3478?transport=udp"],
                                "username": "ops@site", "credential": "p@ss:w,d"}
    rtc = server.to_rtc()
    assert (rtc.urls, rtc.username, rtc.credential) == (server.url, "ops@site", "p@ss:w,d")
    assert parse_ice_server("turns:u:p@turn.example.com:5349?transport=tcp").url == \
        "turns:turn.example.com:5349?transport=tcp"
    stun_only = parse_ice_server(" stun:stun.example.com:3478 ")
    assert stun_only.to_json() == {"urls": ["stun:stun.example.com:3478"]}
    assert parse_ice_servers(["stun:a.example", " ", "turn:u:p@b.example"]) == (
        IceServer("stun:a.example"), IceServer("turn:b.example", "u", "p"))


@pytest.mark.parametrize("entry", [
    "turn:user@turn.example.com",  # no password
    "turn::pw@turn.example.com",  # no user
    "stun:user:pw@stun.example.com",  # STUN takes no credentials
    "turn:u:pw@turn.example.com:port",
    "turn:u:pw@turn.example.com?transport=sctp",
    "turns:u:pw@turn.example.com?transport=udp",  # TLS runs over TCP only
    "https://turn.example.com",
])
def test_malformed_ice_server_is_refused_without_echoing_it(entry):
    with pytest.raises(ValueError) as err:
        parse_ice_server(entry)
    assert "pw" not in str(err.value) and "ice_servers" in str(err.value)


def test_malformed_ice_server_stops_the_session_manager_from_starting():
    with pytest.raises(ValueError, match="ice_servers"):
        session_manager(make_config(ice_servers=("turn:nopassword@127.0.0.1:3478",)))


def test_a_turn_server_without_credentials_needs_the_shared_secret():
    with pytest.raises(ValueError, match="turn.secret"):
        session_manager(make_config(ice_servers=("turn:127.0.0.1:3478",)))
    session_manager(make_config(ice_servers=("turn:127.0.0.1:3478",),
                               turn__secret=TURN_SECRET))  # starts


def test_credentials_are_coturns_rest_api_form_and_expire_with_the_session():
    """username EXPIRY:session-id, password base64(HMAC-SHA1(secret, username)) (coturn
    use-auth-secret); only TURN entries written without credentials get them."""
    servers = parse_ice_servers(["stun:stun.example.com", "turn:turn.example.com:3478",
                                 "turns:turn.example.com:5349?transport=tcp",
                                 "turn:static:pw@old.example.com"])
    expires_at = 1_900_000_000.25
    one = for_session(servers, TurnSettings(TURN_SECRET, grace_s=GRACE_S), "abc", expires_at)
    username = f"{math.ceil(expires_at + GRACE_S)}:abc"
    password = base64.b64encode(hmac.new(TURN_SECRET.encode(), username.encode(),
                                         hashlib.sha1).digest()).decode()
    assert [(s.username, s.credential) for s in one] == [
        (None, None), (username, password), (username, password), ("static", "pw")]
    assert rest_credentials(TURN_SECRET, "abc", expires_at + GRACE_S) == (username, password)
    other = for_session(servers, TurnSettings(TURN_SECRET, GRACE_S), "abd", expires_at)
    assert other[1].credential != password  # each session its own
    assert for_session(servers, TurnSettings(), "abc", expires_at) == servers


def test_the_secret_comes_from_the_environment_and_is_never_shown():
    cfg = load_config(env={"SERVICE_TURN__SECRET": TURN_SECRET})
    assert cfg.turn.secret == TURN_SECRET
    assert TURN_SECRET not in repr(cfg) and TURN_SECRET not in str(cfg.turn)


@dataclass(frozen=True)
class Turn:
    port: int
    log: Path

    @property
    def url(self) -> str:
        """The ice_servers entry: no credentials, they come from the shared secret."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def free_port() -> int:
    """A loopback port free for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port")


def stun_answers(port: int) -> bool:
    """One STUN Binding request (RFC 8489) to the server; True if it answered."""
    request = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data, _ = sock.recvfrom(2048)
        except OSError:  # timeout, or refused while nothing listens yet
            return False
    answer = stun.parse_message(data)
    return answer.transaction_id == request.transaction_id


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    """A real coturn on a free loopback port with the shared secret (TURN REST API
    credentials only) and no system configuration (-n), TLS, CLI or TCP relays; relays
    on 127.0.0.1 only."""
    if TURNSERVER is None:
        pytest.skip("coturn's turnserver is not installed (scripts/install-system-packages.sh)")
    work = tmp_path_factory.mktemp("coturn")
    port = free_port()
    log = work / "turnserver.log"
    args = [TURNSERVER, "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
            "--listening-port", str(port), "--use-auth-secret",
            "--static-auth-secret", TURN_SECRET, "--realm", REALM, "--fingerprint",
            "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--no-tcp-relay", "--no-multicast-peers",
            # the service's own candidates are on this machine: loopback peers allowed
            # here only (the deployment files deny them)
            "--allow-loopback-peers",
            "--pidfile", str(work / "turnserver.pid"), "--userdb", str(work / "turndb"),
            "--log-file", "stdout", "--simple-log"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=work)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not stun_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"turnserver did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Turn(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest_asyncio.fixture(scope="module")
async def turn_server(turn: Turn) -> AsyncIterator:
    server = await start_server(make_config(
        ice_servers=(turn.url,), turn__secret=TURN_SECRET, turn__grace_s=GRACE_S,
        sessions__observation_s=4.0,
        sessions__media_timeout_s=4.0, sessions__ttl_s=40.0))
    yield server
    await server.close()


def session_expiry(server, session) -> float:  # type: ignore[no-untyped-def]
    return server.app[MANAGER].store.sessions[session["session_id"]].expires_at


def nominated_pair(pc):  # type: ignore[no-untyped-def]
    """aioice's nominated candidate pair of a connected peer (component 1: RTP and
    RTCP are muxed on one bundle); None until ICE has nominated one."""
    ice = pc.getTransceivers()[0].receiver.transport.transport
    return ice._connection._nominated.get(1)


async def test_relay_only_client_is_decided_through_coturn(turn, turn_server, http):
    url = str(turn_server.make_url("")).rstrip("/")
    status, session = await create_session(http, url, KEY, SECRET, challenges="0")
    assert status == 201, session
    # the client gets the TURN server with the session's own credentials apart, as
    # browsers take them, valid until the session expires (plus the grace)
    [entry] = session["ice_servers"]
    expiry, _, name = entry["username"].partition(":")
    assert entry["urls"] == [f"turn:127.0.0.1:{turn.port}?transport=udp"]
    assert name == session["session_id"]
    assert int(expiry) == math.ceil(session_expiry(turn_server, session) + GRACE_S)
    assert entry["credential"] == rest_credentials(TURN_SECRET, name, int(expiry))[1]
    client = WhipClient(session, http, relay_only=True)
    frames = decode_all(data_bytes("blink/zju/000001M_FBN.mp4"))
    assert await client.connect(ClipTrack(frames, fps=15)) == 201
    try:
        offered = [line for line in client.pc.localDescription.sdp.splitlines()
                   if line.startswith("a=candidate:")]
        assert offered and all(" typ relay" in line for line in offered), offered
        server_pc = turn_server.app[MANAGER].peers[session["session_id"]].pc
        for _ in range(200):  # bounded: ICE over loopback nominates in well under 20 s
            client_pair, server_pair = nominated_pair(client.pc), nominated_pair(server_pc)
            if client_pair is not None and server_pair is not None:
                break
            await asyncio.sleep(0.1)
        assert client_pair is not None and server_pair is not None, "ICE never nominated"
        # the client sends through its TURN allocation, and the service answers to
        # the client's relayed address on coturn
        assert client_pair.local_candidate.type == "relay"
        assert client_pair.local_candidate.port != turn.port
        assert server_pair.remote_candidate.type == "relay"
        assert server_pair.remote_addr == client_pair.local_addr
        payload = await asyncio.wait_for(client.result, 60)
    finally:
        await client.hang_up()
    assert status_of(payload) == "2000", payload["messageString"]
    live = {i["desc"]: i["content"] for i in payload["infoList"][0]["veritem"]}["Live or not"]
    assert live in ("Living body", "Non-living body")
    assert payload["detail"]["ended_by"] != "no video received", payload["detail"]
    status, stored = await client.poll_result(timeout=10)
    assert status == 200 and stored["infoList"] == payload["infoList"]


class _Ignore(asyncio.DatagramProtocol):
    pass


async def allocate(port: int, username: str, password: str) -> str:
    """A TURN allocation on coturn (RFC 8656 Allocate, aioice's client): the relayed
    address, or the error coturn answered."""
    try:
        transport, _ = await asyncio.wait_for(aioice_turn.create_turn_endpoint(
            _Ignore, ("127.0.0.1", port), username, password), 10)
    except stun.TransactionFailed as exc:
        return f"refused {exc.response.attributes['ERROR-CODE'][0]}"
    host, relay_port = transport.get_extra_info("sockname")
    transport.close()
    return f"relayed {host}"


async def relay_candidates(servers: list[dict]) -> list[str]:
    """The candidates a relay-only client (W3C iceTransportPolicy "relay") offers with
    these ice_servers: none when coturn refuses its credentials."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers],
                                            iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    try:
        pc.createDataChannel("liveness")
        await pc.setLocalDescription(await pc.createOffer())  # gathers, bounded by aioice
        return [line for line in pc.localDescription.sdp.splitlines()
                if line.startswith("a=candidate:")]
    finally:
        await pc.close()


def forged(entry: dict, how: str) -> dict:
    """The session's TURN entry with its credentials altered as an attacker would."""
    expiry, _, name = entry["username"].partition(":")
    if how == "expired":  # well signed, but its time is over
        username, password = rest_credentials(TURN_SECRET, name, time.time() - 60)
    elif how == "extended":  # the expiry pushed back, the signature kept
        username, password = f"{int(expiry) + 3600}:{name}", entry["credential"]
    elif how == "other secret":
        username, password = rest_credentials("not-the-secret", name, int(expiry))
    else:  # "no expiry": a plain user name, as static credentials had
        username, password = name, entry["credential"]
    return {**entry, "username": username, "credential": password}


async def test_coturn_relays_for_the_session_credentials_only(turn, turn_server, http):
    url = str(turn_server.make_url("")).rstrip("/")
    status, session = await create_session(http, url, KEY, SECRET, challenges="0")
    assert status == 201, session
    [entry] = session["ice_servers"]
    assert await allocate(turn.port, entry["username"], entry["credential"]) == \
        "relayed 127.0.0.1"
    assert len(await relay_candidates([entry])) == 1
    for how in ("expired", "extended", "other secret", "no expiry"):
        bad = forged(entry, how)
        assert await allocate(turn.port, bad["username"], bad["credential"]) == \
            "refused 401", how
        assert await relay_candidates([bad]) == [], how  # the client has no way through
