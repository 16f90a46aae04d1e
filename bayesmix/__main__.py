import sys

from bayesmix.cli.main import main

sys.exit(main())
