"""Audit a dataset: `python scripts/audit.py data=<dataset> [model=...] [ckpt_path=...]`."""

from imgclf.audit.app import main

if __name__ == "__main__":
    main()
