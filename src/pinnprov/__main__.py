import sys

from pinnprov.cli import main

sys.exit(main())
