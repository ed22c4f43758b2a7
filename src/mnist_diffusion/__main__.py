"""``python -m mnist_diffusion``: runs :func:`mnist_diffusion.cli.main` and exits with its status."""

import sys

from mnist_diffusion.cli import main

sys.exit(main())
