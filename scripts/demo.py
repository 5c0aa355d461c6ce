"""A web page to try a trained model: `python scripts/demo.py ckpt_path=<checkpoint>`."""

from imgclf.demo.app import main

if __name__ == "__main__":
    main()
