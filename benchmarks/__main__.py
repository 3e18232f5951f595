"""`python -m benchmarks [--quick] [--json PATH] [--strict] [--only NAME ...]`."""

from .run import main

raise SystemExit(main())
