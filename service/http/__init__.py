"""The HTTP server: the aiohttp runner and its middleware (request ids, limits, the
error envelope, metrics counting), request authentication (signed form fields, bearer
tokens, replay protection), proxy headers, the OpenAPI document and the web page.

May import: api (the envelope it answers errors with), cluster (shared replay and
failure counts), ops, errors. Not: rtc, judging or anything that runs models."""
