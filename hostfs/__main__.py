import sys

from hostfs.cli import main

sys.exit(main())
