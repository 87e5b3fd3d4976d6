"""Teacher pruning variants, prune-then-distill students, pickle-free save/load, and pushing to a local Hub."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import timm
import torch

from helpers import BlobImages, TinyNet
from r2kd_hf import R2KDConfig, R2KDTrainer, load_student, prune_student
from r2kd_hf.loading import create_timm_classifier, prune_student_or_resume
from r2kd_hf.pruning import l1_unstructured_global, prune_teacher_copy, weight_sparsity
from r2kd_hf.app.recipe import ModelArguments

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = {i: f"class_{i}" for i in range(4)}


def small_config(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, use_cpu=True, report_to="none",
                  save_strategy="no", disable_tqdm=True, validate_teacher=False, logging_steps=1)
    values.update(overrides)
    return R2KDConfig(**values)


def test_global_pruning_hits_the_overall_amount_with_uneven_layers():
    model = timm.create_model("cifar_resnet8", num_classes=4)
    l1_unstructured_global(model, 0.3)
    sparsity = weight_sparsity(model)
    assert sparsity.pop("overall") == pytest.approx(0.3, abs=1e-4)
    assert max(sparsity.values()) - min(sparsity.values()) > 0.05


def test_structured_teacher_copy_is_smaller_and_leaves_the_teacher_alone():
    teacher = create_timm_classifier("cifar_resnet8", 4, LABELS)
    before = sum(p.numel() for p in teacher.parameters())
    pruned, report = prune_teacher_copy(teacher, "structured", 0.3, example_inputs=torch.randn(1, 3, 8, 8))
    assert sum(p.numel() for p in teacher.parameters()) == before
    assert report["params_after"] < 0.7 * before and report["macs_after"] < report["macs_before"]
    assert pruned(torch.randn(2, 3, 8, 8)).logits.shape == (2, 4)


def test_structured_teacher_pruning_through_the_trainer(tmp_path):
    args = small_config(tmp_path, prune_teacher=True, teacher_prune_method="structured", teacher_prune_amount=0.25)
    trainer = R2KDTrainer(model=create_timm_classifier("cifar_resnet8", 4, LABELS), teacher_model=create_timm_classifier("cifar_resnet8", 4, LABELS),
                          args=args, train_dataset=BlobImages(16))
    trainer.train()
    assert trainer.teacher.pruning_report["method"] == "structured"
    assert any("pruned_teacher_params" in e for e in trainer.state.log_history)


@pytest.mark.parametrize("amount", [0.0, 1.0, -0.1, 1.5])
def test_pruning_amount_must_be_a_fraction(amount):
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        prune_student(create_timm_classifier("cifar_resnet8", 4, LABELS), amount, (3, 8, 8))
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        prune_teacher_copy(TinyNet(), "l1_unstructured", amount)
    with pytest.raises(ValueError, match=r"prune_student=.* it must be > 0 and < 1"):
        ModelArguments(prune_student=amount)


def test_unsupported_architecture_names_supported_families():
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, img_size=32, patch_size=8)
    with pytest.raises(ValueError, match="attention models.*Supported: convolutional networks"):
        prune_student(vit, 0.5, (3, 32, 32))
    shuffle = timm.create_model("cifar_shufflenetv2", num_classes=4)
    with pytest.raises(ValueError, match="could not prune CifarShuffleNetV2"):
        prune_student(shuffle, 0.5, (3, 32, 32))


def test_pruned_student_saves_without_pickle_and_reloads_identically(tmp_path):
    student = create_timm_classifier("cifar_resnet20", 4, LABELS)
    report = prune_student(student, 0.5, (3, 8, 8))
    assert report["params_after"] < 0.35 * report["params_before"]
    trainer = R2KDTrainer(model=student, teacher_model=create_timm_classifier("cifar_resnet20", 4, LABELS),
                          args=small_config(tmp_path), train_dataset=BlobImages(16))
    trainer.train()
    trainer.save_model()
    out = tmp_path / "out"
    record = json.loads((out / "r2kd_pruning.json").read_text())
    assert record["base"]["architecture"] == "cifar_resnet20" and record["layers"]
    loaded = load_student(str(out))
    student.eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, student(x).logits)
    assert loaded.config.id2label[1] == "class_1"


def test_pruned_student_checkpoint_resumes(tmp_path):
    def build(resume_dir=None):
        student = create_timm_classifier("cifar_resnet8", 4, LABELS)
        prune_student_or_resume(student, 0.5, (3, 8, 8), resume_dir=resume_dir)
        return student

    args = small_config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    teacher = create_timm_classifier("cifar_resnet8", 4, LABELS)
    R2KDTrainer(model=build(), teacher_model=teacher, args=args, train_dataset=BlobImages(16)).train()
    checkpoint = str(tmp_path / "out" / "checkpoint-2")
    assert os.path.exists(os.path.join(checkpoint, "r2kd_pruning.json"))
    # a fresh, unpruned student is reshaped from the checkpoint's record, then Trainer loads the weights
    resumed = R2KDTrainer(model=build(checkpoint), teacher_model=teacher, args=small_config(tmp_path, max_steps=4, save_strategy="no"),
                          train_dataset=BlobImages(16))
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.state.global_step == 4


def test_load_student_rejects_bad_folders(tmp_path):
    plain = create_timm_classifier("cifar_resnet8", 4, LABELS)
    plain.save_pretrained(tmp_path / "plain")
    with pytest.raises(FileNotFoundError, match="has no config.json: it is not a saved model"):
        load_student(str(tmp_path / "nothing-here"))
    pruned = create_timm_classifier("cifar_resnet8", 4, LABELS)
    prune_student(pruned, 0.5, (3, 8, 8))
    from r2kd_hf import save_classifier

    save_classifier(pruned, str(tmp_path / "pruned"))
    record_path = tmp_path / "pruned" / "r2kd_pruning.json"
    record = json.loads(record_path.read_text())
    name = next(n for n, s in record["layers"].items() if s["type"] == "Conv2d")
    record["layers"][name]["out_channels"] += 1
    record_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="do not match its pruning record"):
        load_student(str(tmp_path / "pruned"))


def test_unreachable_repo_while_offline_is_reported():
    with pytest.raises(OSError, match="the Hub did not serve it.*HF_HUB_OFFLINE is set: unset it"):
        load_student("someone/pruned-student")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_hub(tmp_path, *flags):
    port_file = str(tmp_path / "hub.port")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "hub_server.py"), port_file, *flags])
    for _ in range(200):
        if os.path.exists(port_file):
            return server, int(open(port_file).read()), port_file + ".files"
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("the local hub server did not start")


def _run_worker(tmp_path, endpoint, repo_id="tester/pruned-student", mode="pruned"):
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    result = subprocess.run([sys.executable, os.path.join(HERE, "hub_worker.py"), str(tmp_path / "out"), repo_id, mode],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "hf_secret_test_token" not in result.stdout + result.stderr  # tokens are never printed
    return json.loads(result.stdout.strip().splitlines()[-1])


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pruned", "timm_module", "timm_name"])
def test_pushed_student_loads_back_through_timm_transformers_and_load_student(tmp_path, mode):
    server, port, store = _start_hub(tmp_path)
    repo_id = f"tester/{mode.replace('_', '-')}-student"
    try:
        result = _run_worker(tmp_path, f"http://127.0.0.1:{port}", repo_id, mode)
        # pipeline("image-classification", model=repo): standard timm students need nothing of ours, the others the import
        env = dict(os.environ, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf_home"))
        pipe = subprocess.run([sys.executable, os.path.join(HERE, "pipeline_worker.py"), repo_id,
                               "plain" if mode == "timm_name" else "import", "8"], env=env, capture_output=True, text=True, timeout=300)
    finally:
        server.kill()
    assert pipe.returncode == 0, pipe.stderr[-3000:]
    classified = json.loads(pipe.stdout.strip().splitlines()[-1])
    assert classified["pipeline"] == classified["model"] and classified["processor"] == "TimmWrapperImageProcessor"
    assert classified["r2kd_hf_imported"] == (mode != "timm_name")
    assert result["pushed"]
    assert result["max_logit_difference"] == {"load_student": 0.0, "timm": 0.0, "transformers": 0.0}
    assert set(result["pulled_params"].values()) == {result["params_after"]}
    assert result["label_names"] == [f"class_{i}" for i in range(4)]
    arrived = os.path.join(store, *repo_id.split("/"))
    files = set(os.listdir(arrived))
    assert {"README.md", "config.json", "model.safetensors", "training_args.json"} <= files
    commits = json.load(open(os.path.join(store, "_commits.json")))[repo_id]
    assert len(commits) == 1 and set(commits[0]) == files  # trainer.push_to_hub(): one commit, everything in it
    assert not [f for f in files if f.endswith(PICKLE_SUFFIXES)], files  # nothing pushed needs unpickling
    card = open(os.path.join(arrived, "README.md")).read()
    for expected in ("r2kd_hf.load_student", "timm.create_model('hf-hub:", "loss | r2kd", "teacher pruning | l1_unstructured, amount 0.1",
                     "blobs", "loss_name: r2kd", "kim2024r2kd", "yun2019cutmix", "model-index"):
        assert expected in card, expected
    if mode == "pruned":
        assert result["params_after"] < result["params_before"] and "r2kd_pruning.json" in files
        assert "params before / after" in card and "fang2023depgraph" in card
    if mode == "timm_module":  # the teacher is named by its architecture, not by a wrapper class
        assert "TimmWrapperForImageClassification" not in card and "cifar_resnet8 (timm)" in card


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["server_down", "http_500"])
def test_failed_push_is_explained_and_local_output_is_complete(tmp_path, failure):
    if failure == "server_down":
        server, endpoint = None, f"http://127.0.0.1:{_free_port()}"
    else:
        server, port, _ = _start_hub(tmp_path, "--fail-commits")
        endpoint = f"http://127.0.0.1:{port}"
    try:
        result = _run_worker(tmp_path, endpoint)
    finally:
        if server:
            server.kill()
    assert not result["pushed"]
    if failure == "server_down":  # found before any training: nothing trained, nothing written
        assert result["stage"] == "setup" and result["files"] == []
        assert "cannot be created or reached" in result["error"] and "Nothing has been trained" in result["error"]
        return
    assert result["stage"] == "push"
    assert "Pushing to the Hub repo 'tester/pruned-student' failed" in result["error"] and "hf upload" in result["error"]
    out = tmp_path / "out"
    assert {"README.md", "config.json", "model.safetensors", "r2kd_pruning.json"} <= set(os.listdir(out))
    assert load_student(str(out)) is not None


def test_pruned_transformers_native_student_round_trips(tmp_path):
    """A transformers model (no timm inside) pruned, saved with save_pretrained + the record, rebuilt from the record."""
    from transformers import ResNetConfig, ResNetForImageClassification

    from r2kd_hf import save_classifier

    model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)).eval()
    report = prune_student(model, 0.5, (3, 16, 16))
    assert report["params_after"] < report["params_before"]
    assert set(save_classifier(model, str(tmp_path))) == {"config.json", "model.safetensors", "r2kd_pruning.json"}
    loaded = load_student(str(tmp_path))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def test_channels_last_students_save_through_timm_and_keep_training_layout(tmp_path):
    """safetensors refuses non-contiguous (channels-last) weights: a contiguous copy is saved, the live model is left."""
    model = create_timm_classifier("cifar_resnet8", 4, LABELS).to(memory_format=torch.channels_last).eval()
    prune_student(model, 0.5, (3, 8, 8))
    model = model.to(memory_format=torch.channels_last)
    r2kd_hf_save(model, tmp_path)
    assert model.timm_model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == "r2kd_pruned" and "num_classes" not in config.get("model_args", {})
    loaded = load_student(str(tmp_path))
    direct = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()  # timm alone, after import r2kd_hf
    for other in (loaded.timm_model, direct):  # the same weights, bit for bit
        for key, value in model.timm_model.state_dict().items():
            assert torch.equal(other.state_dict()[key], value), key
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():  # the layouts pick different kernels: equal up to float rounding
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=1e-6)


def r2kd_hf_save(model, folder):
    from r2kd_hf import save_classifier

    return save_classifier(model, str(folder))
