"""`python -m workflow.config FILE...`: check config files without running anything in them (settings.main)."""

from workflow.config.settings import main

raise SystemExit(main())
