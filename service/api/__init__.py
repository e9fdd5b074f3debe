"""The vendor-compatible request/response API (POST /api/verify, typeIds 21 and 3035):
parsing its form fields and bodies, dispatching to the judging use cases, and the
`{infoList, messageString}` envelope every answer (sessions too) is built in.

May import: judging, liveness (challenge names), vision, media, ops, errors. Not: http
or rtc (they sit above and use this contract), nor config or state: the composition
root (service/app.py) hands the handler its settings, the authenticator (as the
request.Authenticate protocol) and the models' slot (verify.VERIFY_API)."""
