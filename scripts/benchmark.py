"""Framework overhead: `python scripts/benchmark.py [model=... data=...] benchmark.steps=N`."""

from imgclf.benchmark import main

if __name__ == "__main__":
    main()
