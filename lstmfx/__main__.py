"""``python -m lstmfx``: the command line."""

import sys

from lstmfx import main

sys.exit(main())
