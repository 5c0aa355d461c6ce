"""Export a checkpoint: `python scripts/export.py ckpt_path=<checkpoint> format=onnx`."""

from imgclf.export import main

if __name__ == "__main__":
    main()
