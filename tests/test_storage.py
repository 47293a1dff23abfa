"""electra_lit.storage against a real S3-compatible server on 127.0.0.1 (tests/s3_server.py)."""

import time

import pytest

from electra_lit import storage
from electra_lit.errors import ConfigError


def test_local_paths_and_urls_are_told_apart(tmp_path):
    assert not storage.is_remote("runs/x") and not storage.is_remote(f"file://{tmp_path}")
    assert storage.is_remote("s3://b/x") and storage.is_remote("gs://b/x")
    assert storage.local_path(f"file://{tmp_path}/a") == tmp_path / "a"
    assert storage.mirror_dir("s3://b/runs/x", tmp_path) == tmp_path / "remote" / "s3" / "b" / "runs" / "x"
    assert storage.local_dir("runs/x", str(tmp_path)) == "runs/x"


def test_a_missing_filesystem_library_names_the_package():
    with pytest.raises(ConfigError, match=r"run_dir=abfs://c/x: .*needs adlfs: pip install adlfs"):
        storage.check_url("abfs://c/x", "run_dir", must_exist=False)


def test_files_go_up_and_come_back_whole(s3, tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    storage.upload(tmp_path / "a.txt", f"{s3.bucket}/dir/a.txt")
    assert storage.download(f"{s3.bucket}/dir/a.txt", tmp_path / "b.txt").read_text() == "hello"
    assert list(storage.list_files(f"{s3.bucket}/dir")) == ["a.txt"]
    assert not list(tmp_path.glob(".*.part"))


def test_fetch_caches_a_remote_folder_and_refreshes_what_changed(s3, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.json").write_text("1")
    storage.upload_tree(tmp_path / "src", f"{s3.bucket}/model")
    local = storage.fetch(f"{s3.bucket}/model", tmp_path / "cache")
    assert (local / "x.json").read_text() == "1"
    (tmp_path / "src" / "x.json").write_text("22")
    storage.upload_tree(tmp_path / "src", f"{s3.bucket}/model")
    assert (storage.fetch(f"{s3.bucket}/model", tmp_path / "cache") / "x.json").read_text() == "22"


def test_a_missing_bucket_is_one_line(s3):
    with pytest.raises(
        ConfigError, match=r"^data.shards=s3://no-such-bucket/x: the bucket no-such-bucket does not exist"
    ):
        storage.check_url("s3://no-such-bucket/x", "data.shards", must_exist=True)


def test_a_missing_path_is_one_line(s3):
    with pytest.raises(ConfigError, match=rf"^ckpt_path={s3.bucket}/none.ckpt: nothing there"):
        storage.check_url(f"{s3.bucket}/none.ckpt", "ckpt_path", must_exist=True)
    storage.check_url(f"{s3.bucket}/new-run", "run_dir", must_exist=False)  # a run folder to be made


def test_wrong_credentials_are_one_line(s3, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ConfigError, match=rf"^run_dir={s3.bucket}/r: access refused, check the credentials"):
        storage.check_url(f"{s3.bucket}/r", "run_dir", must_exist=False)


def test_an_unreachable_endpoint_is_one_line_within_30_s(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^run_dir={s3.bucket}/r: cannot reach the endpoint"):
        storage.check_url(f"{s3.bucket}/r", "run_dir", must_exist=False)
    assert time.monotonic() - started < 30
