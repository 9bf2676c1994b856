import sys

from s3_sharing.cli.main import main

sys.exit(main())
