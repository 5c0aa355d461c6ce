"""`python scripts/peak_memory.py -- python train.py ...`: run a command and report the peak
memory it and all its child processes (DataLoader workers) held together, as PSS: pages
shared between the processes are counted once, in proportion, not once per process."""

import subprocess
import sys

from imgclf.memory import PeakMemory


def main() -> int:
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise SystemExit(__doc__)
    process = subprocess.Popen(command)
    with PeakMemory(pid=process.pid, interval_seconds=0.5) as memory:
        status = process.wait()
    print(f"peak memory of the command and its children: {memory.peak_bytes / 2**20:,.0f} MiB")
    return status


if __name__ == "__main__":
    sys.exit(main())
