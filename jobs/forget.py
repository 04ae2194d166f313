"""Erase users (right to erasure) for spark-submit; accepts the same options as `lakehouse forget`.

    spark-submit --properties-file .cache/spark-defaults.conf jobs/forget.py --user-id N [--user-id M] [--purge] [--dry-run] [--warehouse URI]
"""

import sys

from lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["forget", *sys.argv[1:]]))
