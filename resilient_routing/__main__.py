"""``python -m resilient_routing``: see :mod:`resilient_routing._cli`."""

from ._cli import main

raise SystemExit(main())
