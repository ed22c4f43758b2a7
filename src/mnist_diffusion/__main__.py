import sys

from mnist_diffusion.cli import main

sys.exit(main())
