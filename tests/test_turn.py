"""Media through a TURN relay: a client that may only use relay candidates reaches the
service through a real coturn on loopback, and its session is decided.

This is the path of a browser behind a strict NAT, and of the Kubernetes deployment
(README "Scaling out"), where the replicas have no public UDP port and all media
crosses coturn. The `ice_servers` setting carries the TURN credentials
(service/rtc/peer.py parse_ice_server); the client takes them from the session answer,
as the web page does.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio
from aioice import stun
from conftest import KEY, SECRET, data_bytes, make_config, start_server, status_of
from rtc_client import ClipTrack, WhipClient, create_session
from videos import decode_all

from service.rtc.manager import SessionManager
from service.rtc.peer import IceServer, parse_ice_server, parse_ice_servers
from service.rtc.routes import MANAGER

TURNSERVER = shutil.which("turnserver")
USER = "verify"
# a `@` and a `:` in the password: the setting percent-encodes them
PASSWORD = "s3cr@t:pw"
REALM = "verify.test"
START_TIMEOUT_S = 15.0


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
        SessionManager(make_config(ice_servers=("turn:nopassword@127.0.0.1:3478",)))


@dataclass(frozen=True)
class Turn:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"turn:{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}?transport=udp"


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
    """A real coturn on a free loopback port, with one static long-term user and no
    system configuration (-n), TLS, CLI or TCP relays; relays on 127.0.0.1 only."""
    if TURNSERVER is None:
        pytest.skip("coturn's turnserver is not installed (scripts/install-system-packages.sh)")
    work = tmp_path_factory.mktemp("coturn")
    port = free_port()
    log = work / "turnserver.log"
    args = [TURNSERVER, "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
            "--listening-port", str(port), "--lt-cred-mech", "--user", f"{USER}:{PASSWORD}",
            "--realm", REALM, "--fingerprint", "--no-tls", "--no-dtls", "--no-cli",
            "--no-rfc5780", "--no-tcp-relay", "--no-multicast-peers",
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
        ice_servers=(turn.url,), sessions__observation_s=4.0,
        sessions__media_timeout_s=4.0, sessions__ttl_s=40.0))
    yield server
    await server.close()


def nominated_pair(pc):  # type: ignore[no-untyped-def]
    """aioice's nominated candidate pair of a connected peer (component 1: RTP and
    RTCP are muxed on one bundle); None until ICE has nominated one."""
    ice = pc.getTransceivers()[0].receiver.transport.transport
    return ice._connection._nominated.get(1)


async def test_relay_only_client_is_decided_through_coturn(turn, turn_server, http):
    url = str(turn_server.make_url("")).rstrip("/")
    status, session = await create_session(http, url, KEY, SECRET, challenges="0")
    assert status == 201, session
    # the client gets the TURN server with its credentials apart, as browsers take them
    assert session["ice_servers"] == [{
        "urls": [f"turn:127.0.0.1:{turn.port}?transport=udp"],
        "username": USER, "credential": PASSWORD}]
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
