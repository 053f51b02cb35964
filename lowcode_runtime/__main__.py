import sys

from lowcode_runtime.cli import main

sys.exit(main())
