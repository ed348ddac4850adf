import sys

from apt_core.cli import main

sys.exit(main())
