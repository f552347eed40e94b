"""Small inputs built from public sources, never from ../shared (face pictures, a synthetic music
catalog, FER2013-shaped faces), and local stand-ins for what the services talk to (an HTTP server, a
private redis-server, the first run's upstream), for the tests and the benchmarks: `make test` passes on
a fresh clone, and bench imports nothing from tests/."""
