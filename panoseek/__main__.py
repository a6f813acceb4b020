import sys

from panoseek.cli import main

sys.exit(main())
