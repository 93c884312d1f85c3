import sys

from modpact.cli import main

sys.exit(main())
