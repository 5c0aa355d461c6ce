"""Classify your images: `python scripts/predict.py ckpt_path=<checkpoint> inputs=<path>`."""

from imgclf.predict import main

if __name__ == "__main__":
    main()
