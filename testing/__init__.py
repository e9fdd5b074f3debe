"""Code the tests and the benchmarks share: clients, processes, media and scenarios.

Both tests/ and bench/ import it as a package (`from testing.rtc_client import
WhipClient`), never by a search-path edit: the editable install (`make install`,
pyproject.toml [tool.setuptools.packages.find]) makes it importable from anywhere, and
`python -m pytest` from the repository root finds it beside tests/. What only the tests
use stays in tests/ (conftest.py, integrator.py, image_build.py); what only one bench
uses stays beside it in bench/.

  client.py            signed raw requests to the vendor API (signed_fields, VerifyClient)
  rtc_client.py        a real aiortc WHIP client: clips, simulated acting, data channel
  netimpair.py         user-space network impairment for that client's sockets
  videos.py            small test videos in memory (encode, decode, photos held as video)
  service_process.py   `python -m service` in its own process on a free loopback port
  replicas.py          a redis-server and service replicas as real processes
  attack_scenarios.py  the streaming attacks and honest users (issue 11)
  simulated_person.py  simulated people and recordings driven against the challenge script
  frame_runs.py        runs of consecutive frames a per-frame state is on
  planarity.py         the motion-planarity measure, kept for bench/real_footage.py
  fuzzcases.py, fuzzharness.py, fuzzmedia.py   the seeded fuzz run (issue 10)

May import: service (any layer, from the outside, as a client or a harness) and models.
The service never imports it (pyproject [tool.importlinter], "service without test code").
"""
