"""Configuration mistakes on the command line: one message naming what is wrong and the
closest name that exists, exit 2, before any data is read or any folder is made."""

from pathlib import Path

from cli import run_script, run_train


def test_mistyped_names_are_one_message_with_the_closest_existing_names(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_train(
        "-m", "model=simple_cnn,deepcnn", "optimizer.lrr=0.1", "trainer.max_epoch=3",
        f"hydra.sweep.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "model=deepcnn: no model option of that name; did you mean model=deep_cnn?" in (
        result.stderr
    )
    assert "The options: airbench, deep_cnn, resnet18, simple_cnn" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()

    # The group choices right, the keys are looked up in what those groups bring.
    result = run_train(
        "model=simple_cnn", "optimizer=sgd", "optimizer.momentun=0.8", "modle.dropout=0.1",
        "sed=3", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "imgclf: error: unknown names on the command line:"
    assert lines[1].startswith(
        "  optimizer.momentun=0.8: optimizer has no key momentun; did you mean "
        "optimizer.momentum? Its keys: _target_, _partial_, lr, momentum"
    )
    assert lines[1].endswith("(to add a new key: +optimizer.momentun=0.8)")
    assert lines[2].startswith(
        "  modle.dropout=0.1: the config has no key modle; did you mean model?"
    )
    assert lines[3].startswith("  sed=3: the config has no key sed; did you mean seed?")
    assert not run_dir.exists()


def test_keys_that_exist_only_in_a_chosen_group_or_are_added_pass(tmp_path: Path) -> None:
    """`data.data_dir` exists only in the image folder's config, which asks for it; a `+`
    key is added, not looked up."""
    result = run_train(
        "data=image_folder", "data.data_dir=???", "+trainer.profiler=simple",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "data.data_dir" in result.stderr
    assert "unknown names" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_other_scripts_check_their_own_config_s_names(tmp_path: Path) -> None:
    """Before the checkpoint is read: it need not exist for the message."""
    checkpoint = f"ckpt_path={tmp_path / 'model.ckpt'}"
    result = run_script("scripts/predict.py", checkpoint, "input=photos")
    assert result.returncode == 2
    assert "input=photos: the config has no key input; did you mean inputs?" in result.stderr
    # eval tests on the checkpoint's own dataset unless data= chooses another.
    result = run_script("scripts/eval.py", checkpoint, "data.batch_size=64")
    assert result.returncode == 2
    assert (
        "data.batch_size=64: no data is chosen here; choose one first, "
        "data=<cifar10 | fashion_mnist | image_csv | image_folder | mnist>"
    ) in result.stderr
    result = run_script("scripts/explore_data.py", "data=mnst")
    assert result.returncode == 2
    assert "data=mnst: no data option of that name; did you mean data=mnist?" in result.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_script("scripts/eval.py", checkpoint, f"hydra.run.dir={blocker}/eval")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"hydra.run.dir={blocker}/eval: cannot create the folder" in result.stderr


def test_image_folder_without_a_folder_says_which_key_to_set(tmp_path: Path) -> None:
    result = run_train("data=image_folder", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "data.data_dir" in result.stderr
    assert "Traceback" not in result.stderr
