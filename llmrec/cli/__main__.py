"""``python -m llmrec.cli``: the same as the ``llmrec`` command."""

import sys

from llmrec.cli import main

sys.exit(main())
