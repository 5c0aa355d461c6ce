"""Test a checkpoint: `python scripts/eval.py ckpt_path=<checkpoint> [data=...]`."""

from imgclf.evaluate import main

if __name__ == "__main__":
    main()
