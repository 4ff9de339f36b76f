"""``python -m tests.bench.peak_rss RESULT_FILE -- CMD...``: run CMD, record its peak RSS.

Why a launcher: Linux folds the high-water RSS of the memory a process had before
``execve`` into its ``ru_maxrss``. A child spawned straight from the bench (vfork or fork
of a process holding hundreds of MB) therefore reports at least the BENCH's peak, not its
own. This launcher is small (a bare interpreter, ~10 MB), so the command it spawns starts
from a small mark, and ``getrusage(RUSAGE_CHILDREN)`` here covers that one command only.
Keep the imports to the standard library's lightest modules.
"""

import json
import resource
import subprocess
import sys


def main() -> int:
    result_file, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        print(__doc__, file=sys.stderr)
        return 2
    code = subprocess.call(command)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(result_file, "w") as fh:
        json.dump(
            {"max_rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime},
            fh,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
