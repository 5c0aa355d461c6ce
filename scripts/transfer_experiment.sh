#!/usr/bin/env bash
# The README's transfer experiment: vgg_cnn (the photos' default network) pretrained on five
# CIFAR-10 classes (airplane, automobile, bird, cat, deer), then trained on 100 photos of each
# of the other five (dog, frog, horse, ship, truck) from that start (model.init_from) and from
# scratch, for the same epochs, 3 seeds each; tested on those five classes' 5,000 official
# test images.
#   bash scripts/transfer_experiment.sh [WORKDIR]     (CIFAR-10 in $IMGCLF_DATA_DIR)
set -euo pipefail
work=${1:-outputs/transfer}
python=${PYTHON:-python}

$python scripts/make_photo_folder.py "$work/photos" --classes dog,frog,horse,ship,truck \
    --per-class 100 --val-per-class 20
$python train.py model=vgg_cnn data=cifar10 'data.classes=[airplane,automobile,bird,cat,deer]' \
    trainer.max_epochs=10 hydra.run.dir="$work/pretrain"
checkpoint=$($python -c "import json, sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" \
    "$work/pretrain/metrics.json")
$python train.py -m data=image_folder data.data_dir="$work/photos" data.image_size=32 \
    trainer.max_epochs=30 seed=1,2,3 "model.init_from=null,$checkpoint" \
    hydra.sweep.dir="$work/photos_runs"
$python scripts/compare_runs.py "$work"/photos_runs/*/
