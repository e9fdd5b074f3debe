"""`python -m service`: verify the models, then serve the API."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import sys

from aiohttp import web

from models.manifest import ModelError, resolve_models
from service.app import MODEL_NAMES, create_app, drain
from service.config import load_config
from service.http.server import serve
from service.ops.logs import configure_logging
from service.ops.memory import limit_malloc_arenas


def main() -> None:
    limit_malloc_arenas()
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", help="bind address (env SERVICE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env SERVICE_PORT, default 8080)")
    args = parser.parse_args()
    config = load_config(host=args.host, port=args.port)
    try:  # SERVICE_LOG_FORMAT: text (default) or json, one object per line
        configure_logging(config.log_format)
    except ValueError as exc:
        sys.exit(f"cannot start: {exc}")
    try:
        resolve_models(config.model_dir, MODEL_NAMES)
    except ModelError as exc:
        sys.exit(f"cannot start: {exc}")
    if not config.api_keys:
        secret = secrets.token_hex(16)
        config = dataclasses.replace(config, api_keys={"local": secret})
        # Printed once, to the console only, so the service runs out of the box.
        print(f"no API keys configured (SERVICE_API_KEYS); generated key 'local' "
              f"with secret {secret}", file=sys.stderr, flush=True)
    if config.redis_url and not config.replicas.secret:
        sys.exit("cannot start: SERVICE_REDIS_URL needs SERVICE_REPLICAS__SECRET (the secret "
                 "replicas sign their calls to each other with)")
    app = create_app(config)
    try:
        asyncio.run(serve(app, config.host, config.port, config.http, lambda: drain(app)))
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM, SIGINT: cleaned up in serve()
        pass


if __name__ == "__main__":
    main()
