"""imgclf's Hydra configs. This folder is the package `imgclf.conf` (pyproject.toml maps it):
a wheel ships it inside imgclf, and an editable install finds it here, so `imgclf-train` reads
its configs from any folder."""
