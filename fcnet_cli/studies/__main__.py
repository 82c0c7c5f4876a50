"""`python -m fcnet_cli.studies`: run the studies and write docs/studies.md."""

import sys

from fcnet_cli.studies.run import main

sys.exit(main())
