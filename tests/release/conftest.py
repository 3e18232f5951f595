"""The release tests: slow (they build, install into fresh venvs and run an index).

The `dist` marker they carry is registered in the root pyproject.toml, so
`pytest -m dist` works from anywhere. The folder is not called `dist`: pytest's
default `norecursedirs` skips any directory of that name.
"""
