"""The deployment files, checked offline: Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate bundles them, strict: unknown fields are errors), the
compose file and both proxy configurations (nginx-crossplane: directives, contexts and
arguments) parsed, and what ties them to the service checked: each replica's
environment is a configuration the service loads, its public URL is a route of the
proxy to that replica alone, probes hit the service's probe routes, grace periods cover
every session, secrets and config maps referenced exist, TURN settings agree with
coturn's, images are pinned and build inputs exist.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import crossplane
import pytest
import yaml
from conftest import ROOT, make_config
from kubernetes_validate.utils import ValidationError, validate

from service.app import create_app
from service.config import Config, load_config
from service.rtc.peer import parse_ice_servers

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes release still maintained when these were written: fields added
# later would be refused.
K8S_VERSION = "1.31.0"
REPLICAS = ("replica-1", "replica-2")


# --- helpers ---

def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


FIELD_REFS = {"metadata.name": "verify-1", "status.hostIP": "10.0.0.7"}


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: references to the Secrets
    and ConfigMaps of the manifests resolved, $(VAR) expanded from earlier entries."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        else:
            ref = item["valueFrom"]
            if "fieldRef" in ref:
                value = FIELD_REFS[ref["fieldRef"]["fieldPath"]]
            elif "secretKeyRef" in ref:
                secret = k8s("Secret", ref["secretKeyRef"]["name"])
                value = secret["stringData"][ref["secretKeyRef"]["key"]]
            else:
                value = k8s("ConfigMap", ref["configMapKeyRef"]["name"])["data"][
                    ref["configMapKeyRef"]["key"]]
        env[item["name"]] = value
    return env


def service_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("SERVICE_")}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op") or "", m.group("arg") or ""
        value = values.get(name, "")
        if op.endswith("?") and not value:
            raise KeyError(f"{name} is required: {arg}")
        return value if value or op != ":-" else arg
    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:-|:\?|\?|-)(?P<arg>[^}]*))?\}", one, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/compose.yaml with the variables of deploy/example.env substituted."""
    values = read_env_file(DEPLOY / "example.env")
    return yaml.safe_load(interpolate((DEPLOY / "compose.yaml").read_text(), values))


def nginx(path: Path) -> list[dict[str, Any]]:
    """The parsed `http` block of an nginx configuration; fails on any error."""
    parsed = crossplane.parse(str(path), check_ctx=True, check_args=True, single=True,
                              strict=True)
    assert parsed["status"] == "ok", parsed["errors"]
    top = parsed["config"][0]["parsed"]
    return next(d for d in top if d["directive"] == "http")["block"]


def directives(block: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def locations(http: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """location args (joined) -> its block, over every server."""
    found = {}
    for server in directives(http, "server"):
        for loc in directives(server["block"], "location"):
            found[" ".join(loc["args"])] = loc["block"]
    return found


def arg(block: list[dict[str, Any]], name: str) -> str:
    (found,) = directives(block, name)
    return " ".join(found["args"])


def seconds(text: str | int) -> float:
    """A compose duration ("180s", "2m30s") or a plain number of seconds."""
    if isinstance(text, int):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    assert parts and text, text
    return 60.0 * int(parts.group(1) or 0) + int(parts.group(2) or 0)


def denied_ranges(args: list[str]) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    out = []
    for item in args:
        if item.startswith("--denied-peer-ip="):
            low, _, high = item.split("=", 1)[1].partition("-")
            out.append((ipaddress.IPv4Address(low), ipaddress.IPv4Address(high or low)))
    return out


def covered(network: str, ranges: list) -> bool:  # type: ignore[type-arg]
    net = ipaddress.IPv4Network(network)
    return any(low <= net[0] and net[-1] <= high for low, high in ranges)


def coturn_flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def check_turn_agrees(cfg: Config, coturn_args: list[str], turn_host: str) -> None:
    (turn,) = [s for s in parse_ice_servers(cfg.ice_servers) if s.url.startswith("turn")]
    where = urlsplit("//" + turn.url.split(":", 1)[1])
    assert where.hostname == turn_host
    assert where.port == int(coturn_flag(coturn_args, "listening-port"))
    # no static credentials: each session's come from coturn's shared secret
    assert turn.username is None and turn.credential is None
    assert not any(a.startswith("--user=") for a in coturn_args)
    assert "--use-auth-secret" in coturn_args and "--lt-cred-mech" in coturn_args
    assert cfg.turn.secret and cfg.turn.secret == coturn_flag(coturn_args, "static-auth-secret")
    assert "--no-tcp-relay" in coturn_args
    assert "-n" in coturn_args  # no configuration file from the image
    assert int(coturn_flag(coturn_args, "min-port")) < int(coturn_flag(coturn_args, "max-port"))


def check_grace(cfg: Config, orchestrator_grace_s: float) -> None:
    """A stopped replica finishes its running sessions: the orchestrator waits longer
    than the drain, and the drain is longer than any session may live."""
    assert cfg.sessions.ttl_s <= cfg.sessions.max_ttl_s < cfg.replicas.drain_grace_s
    assert cfg.replicas.drain_grace_s < orchestrator_grace_s


# --- Kubernetes ---

@pytest.mark.parametrize("doc", k8s_docs(),
                         ids=lambda d: f"{d[0]}:{d[1]['kind']}/{d[1]['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc, monkeypatch):
    # the schemas ship inside the package: no network (a connection attempt fails)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network use"))
    _, resource = doc
    assert validate(resource, K8S_VERSION, strict=True)
    assert resource["kind"] == "Namespace" or resource["metadata"]["namespace"] == "verify"


@pytest.mark.parametrize("change", ["misspelled field", "wrong type", "missing field"])
def test_the_validator_refuses_a_broken_statefulset(change):
    resource = yaml.safe_load(yaml.safe_dump(k8s("StatefulSet", "verify")))
    spec = resource["spec"]
    if change == "misspelled field":
        spec["template"]["spec"]["terminationGracePeriod"] = 180
    elif change == "wrong type":
        spec["replicas"] = "two"
    else:
        del spec["selector"]
    with pytest.raises(ValidationError):
        validate(resource, K8S_VERSION, strict=True)


def replica_container() -> dict[str, Any]:
    (container,) = k8s("StatefulSet", "verify")["spec"]["template"]["spec"]["containers"]
    return container


def test_replica_env_is_a_configuration_the_service_loads():
    env = pod_env(replica_container())
    cfg = load_config(env=service_env(env))
    config_map = k8s("ConfigMap", "verify-config")["data"]
    # each pod's public URL is the proxy's route to it: <base>/pods/<pod name>
    assert cfg.public_url == f"{config_map['public-base-url']}/pods/verify-1"
    redis = urlsplit(cfg.redis_url)
    redis_service = k8s("Service", "redis")
    assert redis.scheme == "redis" and redis.hostname == "redis"
    assert redis.port in [p["port"] for p in redis_service["spec"]["ports"]]
    assert cfg.replicas.secret and cfg.api_keys
    assert cfg.port == 8080 and cfg.host == "0.0.0.0"
    coturn = k8s("Deployment", "coturn")["spec"]["template"]["spec"]["containers"][0]
    check_turn_agrees(cfg, [re.sub(r"\$\((\w+)\)", lambda m: pod_env(coturn)[m.group(1)], a)
                            for a in coturn["args"]], config_map["turn-host"])


def test_replica_probes_grace_and_ports():
    spec = k8s("StatefulSet", "verify")["spec"]["template"]["spec"]
    container = replica_container()
    cfg = load_config(env=service_env(pod_env(container)))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready, alive = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (ready["path"], alive["path"]) == ("/readyz", "/healthz")
    assert ports[ready["port"]] == ports[alive["port"]] == cfg.port
    routes = {r.canonical for r in create_app(make_config()).router.resources()}
    assert {"/readyz", "/healthz"} <= routes
    check_grace(cfg, spec["terminationGracePeriodSeconds"])
    # Kubernetes' service-link variables never mix into the SERVICE_* settings
    assert spec["enableServiceLinks"] is False


def test_services_select_pods_and_name_their_ports():
    pods = {}
    for _, doc in k8s_docs():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            template = doc["spec"]["template"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= \
                template["metadata"]["labels"].items()
            pods[doc["metadata"]["name"]] = template
    for _, svc in k8s_docs():
        if svc["kind"] != "Service":
            continue
        matched = [t for t in pods.values()
                   if svc["spec"]["selector"].items() <= t["metadata"]["labels"].items()]
        assert len(matched) == 1, svc["metadata"]["name"]
        port_names = {p["name"] for c in matched[0]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    statefulset = k8s("StatefulSet", "verify")
    headless = k8s("Service", statefulset["spec"]["serviceName"])["spec"]
    # per-pod DNS names, draining pods included (they still serve their own sessions)
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True


def test_every_secret_and_config_map_referenced_exists():
    refs = 0
    for _, doc in k8s_docs():
        for node in walk(doc):
            for kind, ref in (("Secret", node.get("secretKeyRef")),
                              ("ConfigMap", node.get("configMapKeyRef"))):
                if ref:
                    data = k8s(kind, ref["name"]).get("stringData" if kind == "Secret"
                                                      else "data")
                    assert ref["key"] in data, ref
                    refs += 1
            if "configMap" in node and isinstance(node["configMap"], dict):
                k8s("ConfigMap", node["configMap"]["name"])
                refs += 1
    assert refs >= 8


def test_k8s_proxy_routes_each_pod_by_name_and_nothing_else(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(k8s("ConfigMap", "verify-proxy")["data"]["nginx.conf"])
    http = nginx(conf)
    locs = locations(http)
    assert arg(locs["/"], "proxy_pass") == "http://verify.verify.svc.cluster.local:8080"
    (pattern,) = [k[2:] for k in locs if k.startswith("~ ")]
    route = re.compile(pattern.replace("(?<", "(?P<"))
    public = load_config(env=service_env(pod_env(replica_container()))).public_url
    m = route.match(urlsplit(public).path + "/v1/sessions/abc/whip")
    assert m and m["pod"] == "verify-1" and m["rest"] == "/v1/sessions/abc/whip"
    for other in ("/pods/redis/", "/pods/verify-1.evil.example/", "/pods/../v1/"):
        assert route.match(other) is None, other
    upstream = arg(locs["~ " + pattern], "proxy_pass")
    headless = k8s("StatefulSet", "verify")["spec"]["serviceName"]
    assert upstream == f"http://$pod.{headless}.verify.svc.cluster.local:8080$rest$is_args$args"
    assert arg(http, "client_max_body_size") == "16m"  # above the service's 10 MB
    assert arg(http, "proxy_buffering") == "off"  # the events stream
    assert arg(http, "proxy_redirect") == "off"  # 307s to the owner pass unchanged


def test_coturn_relays_only_to_public_peers():
    pod = k8s("Deployment", "coturn")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    args = pod["containers"][0]["args"]
    ranges = denied_ranges(args)
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                    "169.254.0.0/16"):
        assert covered(private, ranges), private
    assert "--allow-loopback-peers" not in args and "--no-multicast-peers" in args


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_images_are_pinned(compose):
    images = [n["image"] for _, d in k8s_docs() for n in walk(d) if isinstance(
        n.get("image"), str)] + [s["image"] for s in compose["services"].values()]
    assert len(images) >= 9
    assert all(pinned(i) for i in images), images


# --- compose ---

def test_compose_services_and_what_they_are_built_from(compose):
    services = compose["services"]
    assert set(services) == {"redis", *REPLICAS, "proxy", "coturn"}
    for name in REPLICAS:
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]).is_file()
        assert "models" in build["additional_contexts"]  # the Dockerfile's model source
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (DEPLOY / volume.split(":")[0]).exists(), volume


def test_compose_replica_env_is_a_configuration_the_service_loads(compose):
    services = compose["services"]
    urls = set()
    for name in REPLICAS:
        cfg = load_config(env=service_env(services[name]["environment"]))
        assert urlsplit(cfg.redis_url).hostname == "redis"
        assert cfg.public_url.endswith(f"/pods/{name}")
        urls.add(cfg.public_url)
        assert cfg.replicas.secret and cfg.api_keys and cfg.port == 8080
        coturn = services["coturn"]
        assert coturn["network_mode"] == "host"
        check_turn_agrees(cfg, coturn["command"], read_env_file(
            DEPLOY / "example.env")["TURN_HOST"])
        check_grace(cfg, seconds(services[name]["stop_grace_period"]))
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{cfg.port}/readyz" in probe
    assert len(urls) == len(REPLICAS)


def test_compose_proxy_routes_each_replica(compose):
    services = compose["services"]
    http = nginx(DEPLOY / "nginx.conf")
    (upstream,) = directives(http, "upstream")
    assert {s["args"][0] for s in upstream["block"]} == {f"{r}:8080" for r in REPLICAS}
    locs = locations(http)
    assert arg(locs["/"], "proxy_pass") == f"http://{upstream['args'][0]}"
    for name in REPLICAS:
        public = load_config(env=service_env(services[name]["environment"])).public_url
        prefix = urlsplit(public).path + "/"
        # the trailing slash of proxy_pass strips the prefix before the replica sees it
        assert arg(locs[prefix], "proxy_pass") == f"http://{name}:8080/"
        assert services["proxy"]["depends_on"][name]["condition"] == "service_healthy"
    (server,) = directives(http, "server")
    listen = arg(server["block"], "listen")
    (published,) = services["proxy"]["ports"]
    assert published.split(":")[-1] == listen
    base = read_env_file(DEPLOY / "example.env")["PUBLIC_URL"]
    assert urlsplit(base).port == int(published.split(":")[0])
    assert arg(http, "client_max_body_size") == "16m"
    assert arg(http, "proxy_redirect") == "off"


def test_compose_coturn_never_relays_into_the_compose_network(compose):
    (subnet,) = [c["subnet"] for c in compose["networks"]["verify"]["ipam"]["config"]]
    args = compose["services"]["coturn"]["command"]
    assert covered(subnet, denied_ranges(args)) and covered("169.254.0.0/16",
                                                            denied_ranges(args))
    assert "--allow-loopback-peers" not in args


def test_a_required_variable_missing_from_the_environment_is_an_error():
    values = read_env_file(DEPLOY / "example.env")
    del values["REPLICA_SECRET"]
    with pytest.raises(KeyError, match="REPLICA_SECRET"):
        interpolate((DEPLOY / "compose.yaml").read_text(), values)


def test_nginx_checker_refuses_a_misspelled_directive(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text((DEPLOY / "nginx.conf").read_text().replace(
        "proxy_buffering off", "proxy_bufering off"))
    parsed = crossplane.parse(str(conf), check_ctx=True, check_args=True, single=True,
                              strict=True)
    assert parsed["status"] == "failed"


# --- the image ---

def test_dockerfile_builds_from_the_project_files():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    copies = [ln.split()[1:-1] for ln in lines if ln.startswith("COPY ")
              and "--from=" not in ln]
    assert copies and all((ROOT / src).exists() for srcs in copies for src in srcs)
    # models installed by the project's own installer, as `make models` does
    make = (ROOT / "Makefile").read_text()
    assert "-m models.install --source-dir" in make
    assert any("-m models.install --source-dir" in ln for ln in lines)
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert any("/readyz" in ln for ln in lines)
    user = next(ln for ln in lines if ln.startswith("RUN useradd"))
    uid = int(re.search(r"--uid (\d+)", user).group(1))
    k8s_uid = k8s("StatefulSet", "verify")["spec"]["template"]["spec"]["securityContext"]
    assert k8s_uid["runAsUser"] == uid
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".models", "deploy/.env"} <= set(ignored)

