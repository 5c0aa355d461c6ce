"""Data path speed and memory: `python scripts/benchmark_data.py data=image_folder ...`."""

from imgclf.benchmark_data import main

if __name__ == "__main__":
    main()
