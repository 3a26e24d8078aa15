"""`python -m forkhttpd`: the same as the `forkhttpd` command."""

import sys

from .cli import main

sys.exit(main())
