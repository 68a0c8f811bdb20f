"""A classroom server: sessions own their work, folders stay inside the owner's roots, quotas hold.

Each test plays a student trying something on a shared server (looking at a classmate's run,
guessing paths, uploading oddities) and checks what they get: their own work, or one message."""
import io
import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import flip_zip_header, good_zip, png, tiny_config, zipped
from tl_core import RunConfig
from tl_core.app import api
from tl_core.policy.access import CLI_SESSION, Session, check_config, resolve_folder, session_from_token
from tl_core.base.errors import ConfigError, NotVisible, QuotaExceeded, TLError
from tl_core.runs import store
from tl_core.planning.validation import validate

TINY = {"epochs": 1, "steps_per_epoch": 5, "batch_size": 8, "embedding": "none"}


def sess(name: str, local: bool = False, seated: bool = True) -> Session:
    """A browser session named `name`; seated (a student who opened the teacher's join link) unless not."""
    s = session_from_token((name + "-token-" * 8)[:40], local=local)[0]
    return Session(s.owner, local=local, seated=True, who=name) if seated else s


def cfg(**train):
    return validate(tiny_config("source_only", images=200, **{**TINY, **train}))


def add_run(rid: str, owner: str, published: bool = False, status: str = "finished") -> str:
    store().insert_run(rid, cfg().to_dict(), owner=owner, published=published)
    store().update(rid, status=status, target_acc=0.5, source_acc=0.9, epoch=1)
    return rid


# -- identity -------------------------------------------------------------------------------

def test_a_session_identity_is_a_secret_token_whose_hash_is_all_the_server_keeps():
    s1, token, fresh = session_from_token(None)
    assert fresh and len(token) >= 40  # 256 random bits, URL-safe: not guessable
    again, t2, fresh2 = session_from_token(token)  # the cookie comes back after a reload or a server restart
    assert not fresh2 and t2 == token and again.owner == s1.owner
    assert token not in s1.owner and s1.owner != token
    for forged in ("", "short", "../../x" * 10, s1.owner, "a" * 500, None, 42):
        s, t, fresh = session_from_token(forged)  # malformed or an owner hash passed as a token: a new identity
        assert fresh and s.owner != s1.owner and t != forged


# -- runs: own, shared, hidden ------------------------------------------------------------------

def test_a_session_sees_and_changes_only_its_own_runs_and_reads_the_shared_ones(home):
    alice, bob = sess("alice"), sess("bob")
    private = add_run("alice-private", alice.owner)
    shared = add_run("alice-shared", alice.owner, published=True)
    teacher = add_run("teacher-cli", "cli")
    assert {r["id"] for r in api.list_runs(alice)} == {private, shared, teacher}
    assert {r["id"] for r in api.list_runs(bob)} == {shared, teacher}
    # Bob asking for Alice's private run gets the same message as for a run that does not exist
    with pytest.raises(NotVisible) as hidden:
        api.get_run(bob, private)
    with pytest.raises(NotVisible) as missing:
        api.get_run(bob, "nosuchrun")
    assert str(hidden.value).replace(private, "X") == str(missing.value).replace("nosuchrun", "X")
    for call in (lambda: api.read_metrics(bob, private), lambda: api.embedding_epochs(bob, private),
                 lambda: api.read_embedding(bob, private), lambda: api.checkpoint_bytes(bob, private),
                 lambda: api.target_samples(bob, private), lambda: api.all_embeddings(bob, private),
                 lambda: api.predict(bob, private, [np.zeros((3, 8, 8), np.uint8)]),
                 lambda: api.cancel_run(bob, private), lambda: api.delete_run(bob, private),
                 lambda: api.publish_run(bob, private)):
        with pytest.raises(NotVisible):
            call()
    # shared runs and the teacher's are read-only for Bob
    assert api.get_run(bob, shared)["mine"] is False and api.get_run(bob, teacher)["mine"] is False
    for rid in (shared, teacher):
        for call in (api.cancel_run, api.delete_run, api.publish_run):
            with pytest.raises(ConfigError, match="belongs to another session"):
                call(bob, rid)
    assert store().get(shared) is not None and store().get(teacher) is not None
    # Alice un-shares: Bob loses sight of it
    api.publish_run(alice, shared, False)
    assert {r["id"] for r in api.list_runs(bob)} == {teacher}
    api.delete_run(alice, private)
    assert store().get(private) is None


@pytest.mark.parametrize("rid", ["../../etc/passwd", "..", "a/b", "/etc", "x" * 200, "run\x00", " ", "ü"])
def test_run_ids_that_look_like_paths_are_just_unknown_runs(home, rid):
    with pytest.raises(NotVisible):
        api.get_run(sess("eve"), rid)
    with pytest.raises(TLError):
        store().run_dir(rid)


def test_a_config_may_only_point_at_what_its_session_may_use(home, tmp_path, monkeypatch):
    alice, bob = sess("alice"), sess("bob")
    up = api.ingest_zip(good_zip(), "photos", alice)
    mine = validate(RunConfig().replace(data={"source": up["domain"], "target": up["domain"]},
                               method={"name": "source_only", "params": {}}, train=TINY))
    check_config(alice, mine)
    with pytest.raises(ConfigError, match="cannot be used here"):
        check_config(bob, mine)  # Bob cannot train on Alice's photos, even knowing the name
    with pytest.raises(ConfigError, match="cannot be used here"):
        api.submit(mine.to_dict(), bob)
    add_run("alice-teacher", alice.owner)
    distill = cfg().replace(method={"name": "distill", "params": {"teacher": "alice-teacher"}})
    with pytest.raises(NotVisible):
        check_config(bob, distill)  # nor use her unshared model as a teacher
    outside = RunConfig().replace(data={"source": f"folder:{tmp_path}", "target": "uci_digits"})
    with pytest.raises(ConfigError, match="cannot be used here"):
        check_config(bob, outside)
    with pytest.raises(QuotaExceeded, match="TL_QUOTA_RUN_IMAGES"):
        check_config(bob, cfg(epochs=100, steps_per_epoch=10_000, batch_size=64))
    check_config(CLI_SESSION, cfg(epochs=100, steps_per_epoch=10_000, batch_size=64))  # the owner is not limited


# -- folders on the server ---------------------------------------------------------------------

def test_folders_only_inside_the_owners_roots_with_one_message_for_every_refusal(home, tmp_path, monkeypatch):
    root = tmp_path / "class_data"
    (root / "flowers" / "rose").mkdir(parents=True)
    (root / "flowers" / "tulip").mkdir(parents=True)
    secret = tmp_path / "secret"
    (secret / "a").mkdir(parents=True)
    os.symlink(secret, root / "link_out")  # a link inside the root that leads outside it
    monkeypatch.setenv("TL_FOLDER_ROOTS", str(root))
    s = sess("student")
    assert resolve_folder(str(root / "flowers"), s) == (root / "flowers").resolve()
    assert resolve_folder(str(root / "flowers" / ".." / "flowers"), s) == (root / "flowers").resolve()
    messages = set()
    for p in (str(secret), str(root / "link_out"), str(root / ".." / "secret"), "~", "/etc", "/", "",
              str(root / "nope"), "/no/such/dir", str(home), str(home / "uploads"), "\x00", "x" * 5000,
              str(root / "flowers" / "rose" / "..." )):
        with pytest.raises(ConfigError) as e:
            resolve_folder(p, s)
        messages.add(str(e.value))
    assert len(messages) == 1, messages  # never tells whether a path exists
    # the app's own store is never usable, even when a root contains it
    monkeypatch.setenv("TL_FOLDER_ROOTS", f"{root}:{home.parent}")
    for p in (str(home), str(home / "uploads"), str(home / "runs")):
        with pytest.raises(ConfigError):
            resolve_folder(p, s)


def test_without_configured_roots_a_network_server_allows_no_folder_and_a_local_one_the_users_home(home, monkeypatch,
                                                                                                     tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "pics").mkdir()
    with pytest.raises(ConfigError, match="none on this server"):
        resolve_folder(str(tmp_path / "pics"), sess("remote", local=False))
    assert api.folder_roots(sess("remote")) == []
    assert resolve_folder(str(tmp_path / "pics"), sess("me", local=True)) == (tmp_path / "pics").resolve()


# -- uploads: private, bounded, all or nothing ------------------------------------------------

def upload_files(home) -> list:
    return [p for p in (home / "uploads").rglob("*") if p.is_file() and p.name != "folders.json"
            and p.suffix != ".lock"] \
        if (home / "uploads").exists() else []


def test_uploads_are_private_and_only_images_are_kept(home):
    alice, bob = sess("alice"), sess("bob")
    entries = {f"x/{c}/{i}.png": png(i) for c in "ab" for i in range(5)}
    entries.update({"x/a/notes.txt": b"hello", "x/b/run.sh": b"rm -rf /", "x/a/model.pt": b"\x80\x04"})
    res = api.ingest_zip(zipped(entries), "mine", alice)
    assert sorted(res["skipped"]) == ["x/a/model.pt", "x/a/notes.txt", "x/b/run.sh"]
    kept = upload_files(home)
    assert len(kept) == 10 and all(p.suffix == ".png" for p in kept)
    names = lambda s: {d["name"] for d in api.domain_choices(s)}  # noqa: E731
    assert res["domain"] in names(alice) and res["domain"] not in names(bob)
    # a dataset called "models" or ".tmp" never lands on the app's own folders
    other = api.ingest_zip(good_zip(), "models", alice)
    assert other["domain"].endswith("/models")
    assert (home / "uploads" / alice.owner / "domains" / "models").is_dir()
    assert api.ingest_zip(good_zip(), ".tmp", alice)["domain"].endswith("/domains/tmp".split("/domains")[1])
    assert (home / "uploads" / alice.owner / "domains" / "tmp").is_dir()
    for bad in ("..", "/", "", "   ", "…"):
        with pytest.raises(ConfigError, match="name made of letters"):
            api.ingest_zip(good_zip(), bad, alice)


@pytest.mark.parametrize("case", ["encrypted", "unknown_compression", "io_error", "disk_full", "crash"])
def test_a_failed_unpack_leaves_nothing_behind(home, case, monkeypatch):
    import errno

    import tl_core.policy.uploads as uploads

    data = good_zip()
    if case == "encrypted":
        data = flip_zip_header(data, 6, b"\x01\x00")  # general purpose flag bit 0: encrypted
    elif case == "unknown_compression":
        data = flip_zip_header(data, 8, (99).to_bytes(2, "little"))  # method 99 (AES) that zipfile cannot read
    else:
        real = uploads._copy_member
        calls = [0]

        def failing(z, m, target, budget):
            calls[0] += 1
            if calls[0] == 4:  # mid-way: three files are already written
                raise {"io_error": OSError(errno.EIO, "I/O error"), "disk_full": OSError(errno.ENOSPC, "full"),
                       "crash": RuntimeError("unexpected")}[case]
            return real(z, m, target, budget)

        monkeypatch.setattr(uploads, "_copy_member", failing)
    with pytest.raises(TLError) as e:
        api.ingest_zip(data, "broken", sess("s"))
    assert {"encrypted": "encrypted", "unknown_compression": "compression method"}.get(case, "cannot be unpacked") \
        in str(e.value)
    assert upload_files(home) == []
    assert not any((home / "uploads").rglob("broken"))


def test_upload_quotas_per_session_and_for_the_server(home, monkeypatch):
    rng = np.random.default_rng(0)

    def noisy_zip(n):
        e = {}
        for c in "ab":
            for i in range(n):
                b = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(b, "PNG")
                e[f"z/{c}/{i}.png"] = b.getvalue()
        return zipped(e)

    monkeypatch.setenv("TL_QUOTA_UPLOAD_MB", "1")
    a = sess("a")
    api.ingest_zip(noisy_zip(5), "first", a)  # ~0.4 MB
    with pytest.raises(QuotaExceeded, match="1 MB.*TL_QUOTA_UPLOAD_MB.*Delete an upload"):
        api.ingest_zip(noisy_zip(20), "second", a)  # ~1.7 MB more
    assert not any((home / "uploads").rglob("second"))
    monkeypatch.setenv("TL_QUOTA_UPLOAD_MB", "100")
    monkeypatch.setenv("TL_QUOTA_UPLOAD_TOTAL_MB", "1")
    with pytest.raises(QuotaExceeded, match="server's upload space.*TL_QUOTA_UPLOAD_TOTAL_MB"):
        api.ingest_zip(noisy_zip(20), "third", sess("b"))
    monkeypatch.setenv("TL_QUOTA_UPLOAD_TOTAL_MB", "100")
    monkeypatch.setenv("TL_QUOTA_DOMAIN_IMAGES", "6")
    with pytest.raises(QuotaExceeded, match="10 images; a dataset may have at most 6.*TL_QUOTA_DOMAIN_IMAGES"):
        api.ingest_zip(good_zip(), "many", sess("b"))
    monkeypatch.setenv("TL_QUOTA_DOMAIN_IMAGES", "0")  # 0 switches a limit off
    api.ingest_zip(good_zip(), "many", sess("b"))


def test_queue_quotas_hold_when_thirty_sessions_submit_at_once_and_each_gets_its_first_run_in(home, monkeypatch):
    monkeypatch.setenv("TL_QUOTA_QUEUED_RUNS", "2")
    monkeypatch.setenv("TL_QUOTA_QUEUED_TOTAL", "45")
    from tl_core.policy import access
    from tl_core import runs

    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])  # queue only: no worker starts here
    sessions = [sess(f"student{i}") for i in range(30)]
    refusals, errors = [], []
    c = cfg()

    def student(s):
        for seed in range(3):
            try:
                runs.submit(c.replace(train={"seed": seed}), owner=s.owner, published=False,
                            limits=access.queue_limits(s))
            except QuotaExceeded as e:
                refusals.append(str(e))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=student, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    rows = store().list(limit=1000)
    per = {s.owner: sum(r["owner"] == s.owner for r in rows) for s in sessions}
    assert min(per.values()) >= 1 and max(per.values()) <= 2  # every session's first run is in; at most 2 each
    # the server's limit holds for second runs: only a session's first item may pass it, so at most
    # 45 runs plus the firsts that arrived once it was full
    assert 45 <= len(rows) <= 45 + sum(1 for n in per.values() if n == 1)
    assert len({r["id"] for r in rows}) == len(rows)  # every run recorded once
    assert len(refusals) == 90 - len(rows)
    assert all("TL_QUOTA_QUEUED" in m for m in refusals)
    assert any("You already have 2 runs" in m for m in refusals) and any("queue is full" in m for m in refusals)


# -- names shown as text, class names compared as people read them ---------------------------------

@pytest.mark.parametrize("a,b", [("Cat", "cat"), ("cat", "cat\u200b"), ("caf\u00e9", "cafe\u0301"),
                                 ("ｃａｔ", "cat"), ("dog  house", "dog house"), ("dog", "\u202edog")])
def test_class_names_equal_after_normalisation_are_one_clash(home, a, b):
    entries = {f"x/{c}/{i}.png": png(i) for c in (a, b) for i in range(3)}
    entries.update({f"x/other/{i}.png": png(i) for i in range(3)})
    with pytest.raises(ConfigError, match="look the same"):
        api.ingest_zip(zipped(entries), "x", sess("s"))
    assert upload_files(home) == []


def test_user_names_in_run_labels_are_escaped_for_markdown():
    r = {"id": "abc", "method": "dann", "source": "upload:" + "0" * 32 + "/my_photos", "target": "folder:/x/[evil](js:1)",
         "status": "finished"}
    label = api.run_label(r)
    assert "my_photos (upload)" in label and "0" * 32 not in label  # the owner's hash is not shown
    assert "[" not in api.escape_markdown(label).replace("\\[", "")


# -- bounded decoding ---------------------------------------------------------------------------

def _png_with_size(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h pixels (the IHDR chunk rewritten, CRC fixed)."""
    import struct
    import zlib

    data = bytearray(png(1, 4))
    ihdr = data.find(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", w, h)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_image_decodes_are_bounded_on_input_and_output():
    from tl_core.data.domains.folder import load_image

    for w, h in ((100_000, 100_000), (40_001, 1000), (1, 40_000_001)):
        with pytest.raises(ConfigError, match="megapixels"):
            api.decode_upload(_png_with_size(w, h), "claims.png")
    # extreme aspect ratios within the budget: the output is exactly the requested square
    for w, h in ((20_000, 1), (1, 20_000), (6000, 3)):
        b = io.BytesIO()
        Image.new("RGB", (w, h), (200, 10, 10)).save(b, "PNG")
        out = load_image(io.BytesIO(b.getvalue()), size=224)
        assert out.shape == (3, 224, 224) and out[0].mean() > 150
    with pytest.raises(ValueError, match="outside"):
        load_image(io.BytesIO(png()), size=100_000)


def test_model_metadata_is_bounded_before_anything_is_built(home):
    meta = {"backbone": "lenet", "classes": [str(i) for i in range(10)], "num_classes": 10, "in_channels": 1,
            "input_spec": {"size": 28, "channels": 1, "mean": [0.5], "std": [0.5]}}
    bad = [({"input_spec": {**meta["input_spec"], "size": 100_000}}, "input size"),
           ({"classes": [str(i) for i in range(5000)], "num_classes": 5000}, "at most 1,000"),
           ({"in_channels": 7}, "1 or 3 channels"),
           ({"input_spec": {**meta["input_spec"], "std": [0.0]}}, "positive std"),
           ({"classes": ["x" * 10_000, "y"], "num_classes": 2}, "200 characters")]
    for change, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            api.import_model(b"", json.dumps({**meta, **change}).encode(), "m", sess("s"))
    with pytest.raises(ConfigError, match="model.json is"):
        api.import_model(b"", b" " * (2 * 1024 * 1024), "m", sess("s"))


def test_memory_caches_have_a_byte_cap_and_evict():
    from tl_core.data.domains.base import _MEMO
    from tl_core.base.lru import ByteLRU

    c = ByteLRU(100, len)
    c.put("a", b"x" * 40)
    c.put("b", b"x" * 40)
    c.get("a")  # a is now the most recent
    c.put("c", b"x" * 40)
    assert "a" in c and "c" in c and "b" not in c and c.bytes == 80
    c.put("huge", b"x" * 101)
    assert "huge" not in c and c.bytes <= 100
    assert 0 < _MEMO.cap <= 64 * 2**30  # the decoded-domain cache is one of these


def test_a_reuploaded_model_with_the_same_name_is_the_new_model(home):
    import torch
    from safetensors.torch import save

    from tl_core.models.backbones import build_backbone
    from tl_core.models.model import Classifier

    meta = {"backbone": "lenet", "classes": [str(i) for i in range(10)], "num_classes": 10, "in_channels": 1,
            "input_spec": {"size": 28, "channels": 1, "mean": [0.5], "std": [0.5]}}
    s = sess("s")
    img = np.full((3, 28, 28), 128, np.uint8)
    outs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        state = Classifier(build_backbone("lenet", pretrained=False, input_size=28, in_channels=1), 10).state_dict()
        res = api.import_model(save(state), json.dumps(meta).encode(), "same_name", s)
        outs.append(api.predict(s, res["model"], [img], top_k=10)[0]["probs"])
    assert outs[0] != outs[1]
    assert len(list((home / "uploads" / s.owner / "models").iterdir())) == 1  # the old copy is gone


def test_a_stopped_run_is_resumed_from_the_page_by_its_owner_only(home, monkeypatch):
    """Issue 29, item 4: an interrupted run is resumable from the page (and `runs resume`), by its owner,
    within the owner's queue quota."""
    from tl_core import runs

    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])  # queue only: no worker starts here
    alice, bob = sess("alice"), sess("bob")
    add_run("stopped-run", alice.owner, published=True, status="interrupted")
    with pytest.raises(TLError):
        api.resume_run(bob, "stopped-run")  # shared with the class: watched, not resumed by others
    assert store().get("stopped-run")["status"] == "interrupted"
    api.resume_run(alice, "stopped-run")
    assert store().get("stopped-run")["status"] == "queued"
    with pytest.raises(TLError, match="Only a stopped run"):
        api.resume_run(alice, "stopped-run")
    monkeypatch.setenv("TL_QUOTA_QUEUED_RUNS", "1")
    add_run("another", alice.owner, status="cancelled")
    with pytest.raises(QuotaExceeded, match="TL_QUOTA_QUEUED_RUNS"):
        api.resume_run(alice, "another")  # one item already waits: the quota holds for a resume too
