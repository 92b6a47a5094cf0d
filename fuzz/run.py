"""Fuzz the SMTP engine for N minutes: ``python fuzz/run.py --minutes N``.

Runs ``fuzz/target.py`` under atheris (``pip install atheris``), starting
from the committed seeds in ``fuzz/corpus`` and growing a working corpus in
``fuzz/.work/corpus``.  Inputs that break an invariant are saved in
``fuzz/.work/crashes``; replay one with ``python fuzz/target.py FILE``.
Prints the executions and crashes found and exits non-zero on a crash.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="how long to fuzz")
    parser.add_argument("--max-len", type=int, default=4096, help="longest input tried, bytes")
    args = parser.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    work = HERE / ".work"
    corpus, crashes = work / "corpus", work / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [
        sys.executable,
        str(HERE / "target.py"),
        "-max_total_time=%d" % max(1, round(args.minutes * 60)),
        "-max_len=%d" % args.max_len,
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-dict=%s" % (HERE / "smtp.dict"),
        "-artifact_prefix=%s/" % crashes,
        str(corpus),
        str(HERE / "corpus"),
    ]
    log_path = work / "last-run.log"
    with open(log_path, "wb") as log:
        returncode = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    text = log_path.read_text(errors="replace")
    executed = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    found = sorted(set(crashes.iterdir()) - before)
    print("executions: %s" % (executed[-1] if executed else "unknown"))
    print("corpus: %d inputs in %s" % (len(list(corpus.iterdir())), corpus))
    print("crashes: %d%s" % (len(found), "".join("\n  " + str(path) for path in found)))
    print("log: %s (libFuzzer exit status %d)" % (log_path, returncode))
    return 1 if found or returncode else 0


if __name__ == "__main__":
    sys.exit(main())
