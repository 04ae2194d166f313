"""The daily incremental job for spark-submit; accepts the same options as `lakehouse run incremental`.

    spark-submit --properties-file .cache/spark-defaults.conf jobs/daily.py [--env NAME] [--source URI] [--warehouse URI]
"""

import sys

from lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "incremental", *sys.argv[1:]]))
