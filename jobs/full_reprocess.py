"""The full-reprocessing job for spark-submit; accepts the same options as `lakehouse run full`.

    spark-submit --properties-file .cache/spark-defaults.conf jobs/full_reprocess.py [--env NAME] [--source URI] [--warehouse URI]
"""

import sys

from lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "full", *sys.argv[1:]]))
