"""Figures of a dataset without training: `python scripts/explore_data.py data=cifar10`."""

from imgclf.explore import main

if __name__ == "__main__":
    main()
