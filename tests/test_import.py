"""`hsc import`: released LHSC / SGRAF checkpoints become hsc checkpoints that score the same.

Checkpoints are written in the released key layout (built here from the published layout,
not from hsc's model) at tiny sizes, in each serialisation format, then imported. The
imported model's scores are compared with a plain evaluation of the published maths on the
released weights: the encoders are written out below, the head is hsc.models.reference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hsc.checkpoint import load_checkpoint, load_model
from hsc.data.vocab import SPECIALS, Vocabulary
from hsc.errors import HscError
from hsc.legacy.importer import import_released
from hsc.models.config import ModelSpec
from hsc.models.reference import loop_similarity
from hsc.models.registry import build_model
from hsc_app.cli import app
from factories import write_released_vocab
from released_checkpoints import FORMATS, CallsModuleFunction, save_released

E, D, WORD, S, R, HEADS = 16, 32, 12, 8, 6, 4  # joint, feature, word, similarity dims; regions; affinity heads
BN_EPS = 1e-5


# --- checkpoints in the released layout -------------------------------------------------

def _linear(prefix: str, out_dim: int, in_dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out_dim, in_dim), f"{prefix}.bias": (out_dim,)}


def _conv1x1(prefix: str, out_dim: int, in_dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out_dim, in_dim, 1), f"{prefix}.bias": (out_dim,)}


def _batch_norm(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (dim,) for name in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()}


def released_shapes(model: str, vocab_size: int, regions: int) -> list[dict[str, tuple[int, ...]]]:
    """[img_enc, txt_enc, sim_enc] key -> shape of a released ``lhsc``, ``saf`` or ``sgr`` checkpoint."""
    img = _linear("fc", E, D)
    txt = {"embed.weight": (vocab_size, WORD)}
    if model == "lhsc":
        for n in range(1, 5):
            block = f"IM_GCN_{n}"
            img |= _conv1x1(f"{block}.g", E, E)
            for name in ("theta", "phi"):
                for suffix in ("", "1", "2", "3"):
                    img |= _conv1x1(f"{block}.{name}{suffix}", E // HEADS, E)
            img |= _linear(f"{block}.fc1", E, E) | _linear(f"{block}.fc2", E, E)
            img |= _conv1x1(f"{block}.W.0", E, E) | _batch_norm(f"{block}.W.1", E)
            for branch in ("embedding_local", "embedding_global", "embedding_v"):
                txt |= _linear(f"W_att{n}.{branch}.0", WORD, WORD)
    for suffix in ("", "_reverse"):
        txt |= {f"cap_rnn.weight_ih_l0{suffix}": (3 * E, WORD), f"cap_rnn.weight_hh_l0{suffix}": (3 * E, E),
                f"cap_rnn.bias_ih_l0{suffix}": (3 * E,), f"cap_rnn.bias_hh_l0{suffix}": (3 * E,)}
    sim = (_linear("v_global_w.embedding_local.0", E, E) | _batch_norm("v_global_w.embedding_local.1", regions)
           | _linear("v_global_w.embedding_global.0", E, E) | _batch_norm("v_global_w.embedding_global.1", E)
           | _linear("v_global_w.embedding_common.0", 1, E)
           | _linear("t_global_w.embedding_local.0", E, E) | _linear("t_global_w.embedding_global.0", E, E)
           | _linear("t_global_w.embedding_common.0", 1, E)
           | _linear("sim_tranloc_w", S, E) | _linear("sim_tranglo_w", S, E) | _linear("sim_eval_w", 1, S))
    if model == "sgr":
        for step in range(3):
            for name in ("graph_query_w", "graph_key_w", "sim_graph_w"):
                sim |= _linear(f"SGR_module.{step}.{name}", S, S)
    else:
        prefix = "cal_sim_base_atten" if model == "lhsc" else "SAF_module"
        sim |= _linear(f"{prefix}.attn_sim_w", 1, S) | _batch_norm(f"{prefix}.bn", 1)
    return [img, txt, sim]


def released_weights(model: str, vocab_size: int, regions: int = R, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Known, non-trivial weights: every BatchNorm has its own statistics, affine terms and counter."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for shapes in released_shapes(model, vocab_size, regions):
        state = {}
        for key, shape in shapes.items():
            if key.endswith("num_batches_tracked"):
                state[key] = torch.tensor(1000)
            elif key.endswith("running_var"):
                state[key] = torch.rand(shape, generator=gen) + 0.5
            else:
                fan_in = shape[1] if len(shape) > 1 else 4
                state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
        parts.append(state)
    return parts


def _opt(model: str) -> argparse.Namespace:
    return argparse.Namespace(data_name="f30k_precomp", img_dim=D, word_dim=WORD, embed_size=E, sim_dim=S,
                              num_layers=1, bi_gru=True, margin=0.2, lambda_softmax=9.0, batch_size=128,
                              module_name="SGR" if model == "sgr" else "SAF")


def write_vocab(path: Path, n_words: int) -> Path:
    return write_released_vocab(path, [*SPECIALS, *(f"word{i}" for i in range(n_words - len(SPECIALS)))])


@pytest.fixture
def vocab(tmp_path: Path) -> Path:
    return write_vocab(tmp_path / "vocab.json", 20)


# --- the published maths, written out on the released weights ---------------------------

def _dense(state: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Linear or 1x1 Conv1d (weight (out, in[, 1])) over the last dim of x."""
    weight = state[f"{prefix}.weight"]
    return x @ weight.reshape(weight.shape[0], -1).t() + state[f"{prefix}.bias"]


def _bn(state: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Eval BatchNorm with channels on the last dim of x."""
    scale = state[f"{prefix}.weight"] / torch.sqrt(state[f"{prefix}.running_var"] + BN_EPS)
    return (x - state[f"{prefix}.running_mean"]) * scale + state[f"{prefix}.bias"]


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / (x.norm(dim=-1, keepdim=True) + 1e-8)


def direct_images(img: dict, feats: torch.Tensor) -> torch.Tensor:
    """fc, then each region-graph block y = (theta . phi^T / R) . g(v), v + BN(W(y)); L2 per region."""
    v = _dense(img, "fc", feats)
    blocks = sorted({key.split(".")[0] for key in img if key.startswith("IM_GCN_")})
    for block in blocks:
        theta = _dense(img, f"{block}.fc1", torch.cat([_dense(img, f"{block}.theta{s}", v)
                                                        for s in ("", "1", "2", "3")], dim=-1))
        phi = _dense(img, f"{block}.fc2", torch.cat([_dense(img, f"{block}.phi{s}", v)
                                                      for s in ("", "1", "2", "3")], dim=-1))
        y = (theta @ phi.transpose(1, 2) / v.shape[1]) @ _dense(img, f"{block}.g", v)
        v = _bn(img, f"{block}.W.1", _dense(img, f"{block}.W.0", y)) + v
    return _l2(v)


def _gru(txt: dict, x: torch.Tensor, suffix: str) -> torch.Tensor:
    """One GRU direction over the rows of x (n, WORD): (n, E)."""
    w_ih, w_hh = txt[f"cap_rnn.weight_ih_l0{suffix}"], txt[f"cap_rnn.weight_hh_l0{suffix}"]
    b_ih, b_hh = txt[f"cap_rnn.bias_ih_l0{suffix}"], txt[f"cap_rnn.bias_hh_l0{suffix}"]
    h, outputs = torch.zeros(E), []
    for step in x:
        gi, gh = w_ih @ step + b_ih, w_hh @ h + b_hh
        reset, update = torch.sigmoid(gi[:E] + gh[:E]), torch.sigmoid(gi[E:2 * E] + gh[E:2 * E])
        candidate = torch.tanh(gi[2 * E:] + reset * gh[2 * E:])
        h = (1 - update) * candidate + update * h
        outputs.append(h)
    return torch.stack(outputs)


def direct_captions(txt: dict, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """As published: attention over the whole (padded) batch, divided by its padded length;
    then a bidirectional GRU over each caption's own words, directions averaged; L2 per word."""
    x = txt["embed.weight"][tokens]
    layers = sorted({key.split(".")[0] for key in txt if key.startswith("W_att")})
    for layer in layers:
        local, key, value = (torch.tanh(_dense(txt, f"{layer}.{branch}.0", x))
                             for branch in ("embedding_local", "embedding_global", "embedding_v"))
        x = (local @ key.transpose(1, 2) / x.shape[1]) @ value + x
    out = torch.zeros(*tokens.shape, E)
    for row, n in enumerate(lengths.tolist()):
        words = x[row, :n]
        both = (_gru(txt, words, "") + _gru(txt, words.flip(0), "_reverse").flip(0)) / 2
        out[row, :n] = _l2(both)
    return out


def direct_captions_unpadded(txt: dict, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The published maths on each caption alone, in a batch without padding."""
    out = torch.zeros(*tokens.shape, E)
    for row, n in enumerate(lengths.tolist()):
        out[row, :n] = direct_captions(txt, tokens[row:row + 1, :n], lengths[row:row + 1])[0]
    return out


def _batch(vocab_size: int, regions: int = R) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(3, regions, D, generator=gen)
    lengths = torch.tensor([7, 4, 2, 5])
    tokens = torch.randint(4, vocab_size, (4, 7), generator=gen)
    tokens[torch.arange(7) >= lengths[:, None]] = 0  # <pad>
    return feats, tokens, lengths


def _import(tmp_path: Path, model: str, fmt: str, vocab: Path, regions: int = R, **options) -> tuple:
    parts = released_weights(model, len(Vocabulary.load(vocab)), regions)
    source = save_released(tmp_path / f"{model}_{fmt}.pth.tar", parts, _opt(model), fmt)
    out = tmp_path / "imported.pt"
    import_released(source, vocab, out, regions=regions, **options)
    return parts, out


@torch.no_grad()
def _scores_both_ways(parts: list[dict], out: Path, feats, tokens, lengths, unpadded: bool = False):
    model, _ = load_model(out)
    hsc_scores = model.similarity(model.encode_images(feats), model.encode_captions(tokens, lengths), lengths)
    encode = direct_captions_unpadded if unpadded else direct_captions
    direct = loop_similarity(model.sim_enc, direct_images(parts[0], feats), encode(parts[1], tokens, lengths),
                             lengths)
    return hsc_scores, direct


# --- imports score as the published maths -----------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model, variant, head", [("lhsc", "hsc", "saf"), ("saf", "saf", "saf"),
                                                  ("sgr", "sgr", "sgr")])
def test_imported_scores_equal_the_published_maths(tmp_path: Path, vocab: Path, model: str, variant: str,
                                                   head: str, fmt: str) -> None:
    parts, out = _import(tmp_path, model, fmt, vocab)
    spec = ModelSpec.from_dict(load_checkpoint(out)["model_config"])
    assert (spec.name, spec.config.head.kind, spec.data.regions, spec.data.vocab_size) == (variant, head, R, 20)
    hsc_scores, direct = _scores_both_ways(parts, out, *_batch(20))
    assert hsc_scores.shape == (3, 4)
    assert (hsc_scores - direct).abs().max() < 1e-5


def test_lhsc_defaults_to_faithful_padding_which_depends_on_the_batch(tmp_path: Path, vocab: Path) -> None:
    parts, out = _import(tmp_path, "lhsc", "py2", vocab)
    assert load_checkpoint(out)["model_config"]["config"]["text"]["attn_padding"] == "faithful"
    feats, tokens, lengths = _batch(20)
    hsc_scores, padded = _scores_both_ways(parts, out, feats, tokens, lengths)
    _, alone = _scores_both_ways(parts, out, feats, tokens, lengths, unpadded=True)
    # The longest caption has no padding in its batch, so only the others move.
    assert (hsc_scores[:, 0] - alone[:, 0]).abs().max() < 1e-5
    assert (padded[:, 1:] - alone[:, 1:]).abs().max() > 1e-4


def test_masked_padding_scores_each_caption_as_if_alone(tmp_path: Path, vocab: Path) -> None:
    parts, out = _import(tmp_path, "lhsc", "zip", vocab, text_attn_padding="masked")
    assert load_checkpoint(out)["model_config"]["config"]["text"]["attn_padding"] == "masked"
    hsc_scores, alone = _scores_both_ways(parts, out, *_batch(20), unpadded=True)
    assert (hsc_scores - alone).abs().max() < 1e-5


def test_released_vocabulary_and_36_regions(tmp_path: Path, shared_scan: Path) -> None:
    vocab = shared_scan / "vocab" / "f30k_precomp_vocab.json"
    parts, out = _import(tmp_path, "lhsc", "py2", vocab, regions=36)
    checkpoint = load_checkpoint(out)
    assert checkpoint["vocab_sha256"] == Vocabulary.load(vocab).sha256
    assert checkpoint["model_config"]["data"]["vocab_size"] == 8481
    assert checkpoint["imported_from"]["data_name"] == "f30k_precomp"
    hsc_scores, direct = _scores_both_ways(parts, out, *_batch(8481, regions=36))
    assert (hsc_scores - direct).abs().max() < 1e-5


def test_a_vocabulary_of_another_size_is_refused(tmp_path: Path, shared_scan: Path) -> None:
    parts = released_weights("lhsc", 8481, regions=36)
    source = save_released(tmp_path / "model_best.pth.tar", parts, _opt("lhsc"), "py2")
    coco = shared_scan / "vocab" / "coco_precomp_vocab.json"
    with pytest.raises(HscError, match=f"embed.weight has 8481 rows but vocab {coco} has 11353 words"):
        import_released(source, coco, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_imported_checkpoint_fine_tunes_as_train_init_reads_it(tmp_path: Path, vocab: Path) -> None:
    _, out = _import(tmp_path, "saf", "zip", vocab)
    init = load_checkpoint(out)
    model = build_model(ModelSpec.from_dict(init["model_config"]))
    model.load_state_dict(init["state_dict"])  # strict, as `hsc train --init` loads it
    feats, tokens, lengths = _batch(20)
    loss = model(feats[:3], tokens[:3], lengths[:3]).diagonal().sum()
    loss.backward()
    assert model.img_enc.fc.weight.grad is not None


def test_batch_norms_without_a_counter_import(tmp_path: Path, vocab: Path) -> None:
    """torch 0.4.0 wrote BatchNorm state without num_batches_tracked."""
    parts = [{k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
             for state in released_weights("lhsc", 20)]
    source = save_released(tmp_path / "old.pth.tar", parts, _opt("lhsc"), "py2")
    import_released(source, vocab, tmp_path / "out.pt", regions=R)
    hsc_scores, direct = _scores_both_ways(parts, tmp_path / "out.pt", *_batch(20))
    assert (hsc_scores - direct).abs().max() < 1e-5


@pytest.mark.parametrize("fmt", ["zip", "py2"])
def test_data_parallel_prefixes_import_to_bit_identical_weights_and_scores(tmp_path: Path, vocab: Path,
                                                                          fmt: str) -> None:
    parts = released_weights("lhsc", 20)
    plain = save_released(tmp_path / "plain.pth.tar", parts, _opt("lhsc"), fmt)
    wrapped = save_released(tmp_path / "wrapped.pth.tar", parts, _opt("lhsc"), fmt, key_prefix="module.")
    import_released(plain, vocab, tmp_path / "plain.pt", regions=R)
    import_released(wrapped, vocab, tmp_path / "wrapped.pt", regions=R)
    expected, got = (load_checkpoint(tmp_path / name)["state_dict"] for name in ("plain.pt", "wrapped.pt"))
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    feats, tokens, lengths = _batch(20)
    scores = []
    for name in ("plain.pt", "wrapped.pt"):
        model, _ = load_model(tmp_path / name)
        with torch.no_grad():
            scores.append(model.similarity(model.encode_images(feats), model.encode_captions(tokens, lengths),
                                           lengths))
    assert torch.equal(*scores)


def test_mixed_data_parallel_prefixes_are_refused(tmp_path: Path, vocab: Path) -> None:
    parts = released_weights("lhsc", 20)
    parts[1] = {("module." + key if key.startswith("W_att") else key): value for key, value in parts[1].items()}
    source = save_released(tmp_path / "m.pth.tar", parts, _opt("lhsc"), "py2")
    with pytest.raises(HscError, match=r"txt_enc mixes keys with and without the DataParallel prefix 'module.' "
                                       r"\(e.g. 'embed.weight'\)") as error:
        import_released(source, vocab, tmp_path / "out.pt", regions=R)
    assert str(source) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("option, features", [("no_imgnorm", "image"), ("no_txtnorm", "text")])
def test_options_that_skip_normalisation_are_refused(tmp_path: Path, vocab: Path, option: str,
                                                     features: str) -> None:
    opt = _opt("lhsc")
    setattr(opt, option, False)  # the default of the published code: imports as before
    import_released(save_released(tmp_path / "ok.pth.tar", released_weights("lhsc", 20), opt, "py2"), vocab,
                    tmp_path / "ok.pt", regions=R)
    setattr(opt, option, True)
    source = save_released(tmp_path / "m.pth.tar", released_weights("lhsc", 20), opt, "py2")
    with pytest.raises(HscError, match=f"{source}: opt.{option} is set, but hsc's model always L2-normalises "
                                       f"its {features} features"):
        import_released(source, vocab, tmp_path / "out.pt", regions=R)
    assert not (tmp_path / "out.pt").exists()


# --- every mismatch is one line naming the key ------------------------------------------

def _drop(parts, part, key):
    del parts[part][key]


def _add(parts, part, key):
    parts[part][key] = torch.zeros(3)


def _reshape(parts, part, key):
    parts[part][key] = torch.zeros(E, E + 1)


@pytest.mark.parametrize("edit, part, key, match", [
    (_drop, 0, "IM_GCN_2.phi1.bias", "missing key img_enc IM_GCN_2.phi1.bias"),
    (_drop, 2, "sim_eval_w.weight", "missing key sim_enc sim_eval_w.weight"),
    (_add, 1, "cap_rnn.weight_ih_l1", "unexpected key txt_enc cap_rnn.weight_ih_l1"),
    (_add, 0, "IM_GCN_1.extra.bias", "unexpected key img_enc IM_GCN_1.extra.bias"),
    (_reshape, 0, "IM_GCN_3.fc2.weight", r"img_enc IM_GCN_3.fc2.weight has shape \(16, 17\) but hsc's model "
                                         r"expects \(16, 16\)"),
    (_drop, 0, "fc.weight", "missing key img_enc fc.weight"),
])
def test_key_and_shape_mismatches_name_the_key(tmp_path: Path, vocab: Path, edit, part: int, key: str,
                                               match: str) -> None:
    parts = released_weights("lhsc", 20)
    edit(parts, part, key)
    source = save_released(tmp_path / "m.pth.tar", parts, _opt("lhsc"), "legacy")
    with pytest.raises(HscError, match=match) as error:
        import_released(source, vocab, tmp_path / "out.pt", regions=R)
    assert "\n" not in str(error.value) and str(source) in str(error.value)
    assert not (tmp_path / "out.pt").exists()


def test_regions_must_match_the_image_batch_norm(tmp_path: Path, vocab: Path) -> None:
    source = save_released(tmp_path / "m.pth.tar", released_weights("saf", 20), _opt("saf"), "zip")
    with pytest.raises(HscError, match=f"normalises {R} regions but --regions is 36; pass --regions {R}"):
        import_released(source, vocab, tmp_path / "out.pt")


def test_options_that_contradict_the_weights_are_refused(tmp_path: Path, vocab: Path) -> None:
    source = save_released(tmp_path / "m.pth.tar", released_weights("sgr", 20), _opt("saf"), "zip")
    with pytest.raises(HscError, match="opt.module_name is 'SAF' but sim_enc holds SGR weights"):
        import_released(source, vocab, tmp_path / "out.pt", regions=R)


# --- the command -----------------------------------------------------------------------

@pytest.mark.parametrize("padding, report", [
    ([], "text attention faithful, 186 tensors"),
    (["--text-attn-padding", "masked"], "text attention masked, 186 tensors"),
])
def test_command_writes_a_checkpoint_and_reports_it(tmp_path: Path, vocab: Path, padding: list[str],
                                                    report: str) -> None:
    source = save_released(tmp_path / "model_best.pth.tar", released_weights("lhsc", 20), _opt("lhsc"), "py2")
    out = tmp_path / "checkpoints" / "lhsc.pt"
    result = CliRunner().invoke(app, ["import", str(source), "--vocab", str(vocab), "--out", str(out),
                                      "--regions", str(R), *padding])
    assert result.exit_code == 0, result.output
    assert f"hsc model with head saf, {report}" in result.output
    assert "encode_batch: 128" not in result.output  # no advice to set it: evaluation fixes the batch
    assert ("encoded in LHSC's batches of 100 automatically" in result.output) == (not padding)
    assert load_checkpoint(out)["model_config"]["config"]["text"]["attn_padding"] == ("masked" if padding else "faithful")


def test_command_refuses_a_code_payload_with_one_line(tmp_path: Path, vocab: Path) -> None:
    marker = tmp_path / "payload-ran"
    source = save_released(tmp_path / "evil.pth.tar", released_weights("saf", 20), _opt("saf"), "zip",
                           payload=CallsModuleFunction(marker))
    done = subprocess.run([sys.executable, "-m", "hsc_app.cli", "import", str(source), "--vocab", str(vocab),
                           "--out", str(tmp_path / "out.pt"), "--regions", str(R)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "refused" in done.stderr
    assert not marker.exists() and not (tmp_path / "out.pt").exists()

