"""`python -m lumid_core.cli`."""

from lumid_core.cli import main

raise SystemExit(main())
