"""Table maintenance (OPTIMIZE, VACUUM) for spark-submit; accepts the same options as `lakehouse maintain`.

    spark-submit --properties-file .cache/spark-defaults.conf jobs/maintenance.py [--env NAME] [--source URI] [--warehouse URI]
"""

import sys

from lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["maintain", *sys.argv[1:]]))
