"""The data audit (`python scripts/audit.py`): out-of-sample predictions for every image, then
what they and the images' embeddings say is wrong with the data: label errors, duplicates,
train/test leakage and outliers, in issues.csv, audit.md, image grids and TensorBoard."""
