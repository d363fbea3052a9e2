import sys

from consortium.cli.main import main

sys.exit(main())
