"""imgclf: train and understand image classifiers with PyTorch Lightning and Hydra."""
