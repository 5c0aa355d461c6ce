"""Train an image classifier: `python train.py model=deep_cnn data=cifar10`. See README.md."""

from imgclf.train import main

if __name__ == "__main__":
    main()
