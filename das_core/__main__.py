"""`python -m das_core` is the `das` command."""

from das_core.cli import main

raise SystemExit(main())
