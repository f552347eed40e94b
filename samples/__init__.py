"""Small inputs built from public sources, never from ../shared: face pictures and a synthetic music
catalog, for the tests, the benchmarks and the stack they start (`make test` on a fresh clone)."""
