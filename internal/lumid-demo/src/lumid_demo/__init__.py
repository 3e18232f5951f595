"""`make demo` and the release checks (a workspace member that is never published).

- `index`: a local package index (pypiserver on 127.0.0.1) for tests and the demo;
- `hosts`: FlowMesh's and Lumilake's plugin loaders, reproduced; it also runs as a
  stand-alone script inside a fresh venv (`python -I hosts.py flowmesh NAME`);
- `walk`: one realistic session through every hook, run inside the demo venv;
- `main`: the `make demo` driver.
"""
