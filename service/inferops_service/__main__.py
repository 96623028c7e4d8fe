"""Run the command line: ``python -m inferops_service serve ...``."""

from inferops_service.cli import main

raise SystemExit(main())
