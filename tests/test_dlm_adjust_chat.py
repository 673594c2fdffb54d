"""ADJUST trajectories from chat-templated prompts (`distill adjust --prompts FILE --chat [--gen-length N]`) on a
tiny LLaDA replica whose tokenizer carries a chat template; refusals when there is no template or no prompt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_model
from test_dlm import official_replica, tiny_chat_tokenizer

from paradistill.checkpoint import save_checkpoint
from paradistill.errors import UserError
from paradistill.loader import load_checkpoint

PROMPTS = ["hello", "the cat hello world"]


def test_adjust_trajectories_follow_the_chat_template(tmp_path, capsys):
    from paradistill.cli import main
    from paradistill.distill.adjust_adapters import ParadistillAdapter
    from paradistill.distill.adjust_store import load_trajectories

    path, _, _ = official_replica("llada", tmp_path)
    tiny_chat_tokenizer(path)
    base = load_checkpoint(path)
    chats = [base.tokenizer.chat_ids(p) for p in PROMPTS]
    assert [len(c) for c in chats] == [6, 9]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "adjust"
    assert main(["distill", "adjust", "--base", str(path), "--prompts", str(prompts), "--chat", "--gen-length", "5",
                 "--out", str(out), "--trajectories", "8", "--steps", "2", "adjust.batch_size=4",
                 "adjust.traj_batch_size=8", "adjust.shard_size=8", "adjust.ema=0", "adjust.val_fraction=0.1",
                 "--no-progress"]) == 0
    length = 9 + 5  # the longest template + --gen-length
    rows = load_trajectories(out / "trajectories", ParadistillAdapter.from_loaded(base).fingerprint())
    tokens, order = rows[:, :length], rows[:, length:2 * length]
    assert tokens.shape == (8, length)
    for r in range(8):
        chat = chats[r % 2]  # trajectory r continues template r % P
        assert tokens[r, :len(chat)].tolist() == chat
        assert not (tokens[r] == base.tokenizer.mask_id).any()
        unmasked = order[r][order[r] >= 0]
        # exactly the positions after the template were generated, one per full pass
        assert sorted(unmasked.tolist()) == list(range(len(chat), length))
    assert json.loads((out / "latest.json").read_text())
    # the trained sampler continues a chat prompt from the command line
    samples = tmp_path / "s.jsonl"
    assert main(["sample", str(path), "--sampler", "adjust", "--adjust", str(out), "--chat", PROMPTS[0],
                 "--gen-length", "5", "--tokens-per-pass", "2", "--num", "2", "--out", str(samples)]) == 0
    got = [json.loads(line)["tokens"] for line in samples.read_text().splitlines()]
    assert all(g[:6] == chats[0] and len(g) == 11 for g in got)
    # plain prompts (no --chat) are encoded as text after the base's BOS setting: no template tokens
    from paradistill.methods.adjust import templates_for

    plain, fixed = templates_for(base, 12, PROMPTS)
    assert plain[0, :1].tolist() == base.tokenizer.encode("hello") and int(fixed[0].sum()) == 1
    assert np.array_equal(templates_for(base, 12, PROMPTS, chat=True, gen_length=5)[0][1, :9].numpy(),
                          np.array(chats[1]))


def test_chat_trajectories_refused_without_template_or_prompts(tmp_path, tiny_tokenizer, capsys):
    from paradistill.cli import main
    from paradistill.methods.adjust import templates_for

    save_checkpoint(tmp_path / "mdlm", make_model(tiny_tokenizer.vocab_size), "mdlm", tiny_tokenizer,
                    {"seq_len": 12, "keep_bos": True})
    base = load_checkpoint(tmp_path / "mdlm")
    with pytest.raises(UserError, match="has no chat template: drop --chat"):
        templates_for(base, 12, ["a b"], chat=True)
    with pytest.raises(UserError, match="--chat applies the chat template to prompts: pass --prompts"):
        templates_for(base, 12, None, chat=True)
    with pytest.raises(UserError, match="--gen-length 0"):
        templates_for(base, 12, ["a"], gen_length=0)
    assert torch.equal(templates_for(base, 12, ["a b", "c"], gen_length=3)[1].sum(1), torch.tensor([3, 2]))
    assert main(["distill", "adjust", "--base", str(tmp_path / "mdlm"), "--chat", "--out",
                 str(tmp_path / "a")]) == 2
    assert "--chat applies the chat template" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["distill", "adjust", "--help"])
    text = capsys.readouterr().out
    assert "--chat" in text and "--gen-length" in text
