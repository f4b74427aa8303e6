import sys

from vidfm.cli.main import main

sys.exit(main())
