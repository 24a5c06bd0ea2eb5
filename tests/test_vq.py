"""The VQ-VAE model: shapes, the quantised round trip, gradients, codebook upkeep, save/load."""
import json

import pytest
import torch

from assistant.config import ConfigError, VQConfig
from assistant.pixels import to_pil, to_tensor
from assistant.vq import VQModel

TINY = VQConfig(image_size=16, downsample=4, codebook_size=16, code_dim=4, channels=(16, 32), stem=2,
                encoder_blocks=1, decoder_blocks=1, groups=8)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VQModel(TINY)


def pixels(batch=3, seed=0):
    return torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_encode_decode_shapes_and_dtypes(model):
    ids = model.encode(pixels())
    assert ids.shape == (3, 4, 4) and ids.dtype == torch.int64
    assert 0 <= int(ids.min()) and int(ids.max()) < TINY.codebook_size
    images = model.decode(ids)
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1


def test_decode_of_encode_is_the_quantised_forward_in_eval_mode(model):
    model.eval()
    x = pixels()
    out = model(x)
    ids = model.encode(x)
    assert torch.equal(ids, out.ids)
    torch.testing.assert_close(model.decode(ids), out.reconstruction.clamp(-1, 1), rtol=0, atol=1e-6)


def test_losses_are_a_named_tuple_of_scalars(model):
    losses = model(pixels()).losses
    assert losses._fields == ("reconstruction", "edge", "codebook", "commitment")
    assert all(value.ndim == 0 and torch.isfinite(value) for value in losses)
    # β scales the commitment term against the codebook term (the same distance, measured both ways).
    torch.testing.assert_close(losses.commitment, TINY.commitment * losses.codebook)


def test_gradients_reach_the_encoder_through_the_straight_through_estimator(model):
    model.train()
    model(pixels()).losses.reconstruction.backward()
    # Only the reconstruction loss: its gradient reaches the encoder only by skipping the argmin.
    encoder_grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in encoder_grads)
    assert sum(float(g.abs().sum()) for g in encoder_grads) > 0
    # The chosen codes get the decoder's gradient too; codes nobody chose get none.
    codebook_grad = model.quantizer.codebook.weight.grad
    chosen = torch.zeros(TINY.codebook_size, dtype=torch.bool)
    chosen[model.encode(pixels()).unique()] = True
    assert (codebook_grad[chosen].abs().sum(1) > 0).all() and (codebook_grad[~chosen] == 0).all()


def test_codebook_loss_trains_the_codebook(model):
    model(pixels()).losses.codebook.backward()
    assert float(model.quantizer.codebook.weight.grad.abs().sum()) > 0


def test_dead_codes_are_restarted_on_encoder_outputs(model):
    model.train()
    model(pixels(8))  # fills the stash of recent encoder outputs
    with torch.no_grad():
        model.quantizer.usage.zero_()
        model.quantizer.usage[0] = 1.0  # every code but code 0 looks dead
        before = model.quantizer.codebook.weight.clone()
    model(pixels(8, seed=1))
    changed = (model.quantizer.codebook.weight != before).any(dim=1)
    assert model.quantizer.restarts == TINY.codebook_size - 1
    assert not changed[0] and changed[1:].all()


def test_dead_codes_restart_where_the_codebook_fits_worst():
    """Two kinds of latent share code 0, a third has code 1 to itself: a dead code restarts on the
    badly served pair, not on the well-served majority."""
    from assistant.vq import Quantizer

    quantizer = Quantizer(codebook_size=4, code_dim=2, commitment=0.25).train()
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    fitted = torch.tensor([0.0, 1.0]).repeat(90, 1)  # code 1 exactly: 90 % of the latents
    shared = torch.tensor([[0.8, 0.6], [0.8, -0.6]]).repeat(5, 1)  # both nearest to code 0, neither fitted
    latents = torch.cat([fitted, shared]).T.reshape(1, 2, 10, 10)
    quantizer(latents)
    with torch.no_grad():
        quantizer.usage.copy_(torch.tensor([0.5, 0.5, 0.0, 0.0]))  # codes 2 and 3 are dead
    torch.manual_seed(0)
    quantizer(latents)
    restarted = torch.nn.functional.normalize(quantizer.codebook.weight[2:], dim=-1)
    assert quantizer.restarts == 2
    assert (restarted[:, 0] > 0.7).all(), restarted  # on the shared pair (x = 0.8), not on code 1's (x = 0)


def test_kmeans_starts_one_code_on_each_cluster_however_unequal():
    """Five tight clusters, one of them 80 % of the latents (a scene's empty cells): k-means++ seeding and
    Lloyd's steps put one code on each, where five codes drawn from the latents would mostly sit on the big one."""
    from assistant.vq import Quantizer

    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(5, 8, generator=generator), dim=-1)
    sizes = torch.tensor([800, 50, 50, 50, 50])
    latents = directions.repeat_interleave(sizes, dim=0) + 0.01 * torch.randn(1000, 8, generator=generator)
    quantizer = Quantizer(codebook_size=5, code_dim=8, commitment=0.25)
    quantizer.fit_kmeans(latents, generator=torch.Generator().manual_seed(1))
    nearest_code = (directions @ quantizer.codes().T).argmax(dim=1)
    assert sorted(nearest_code.tolist()) == [0, 1, 2, 3, 4]  # every cluster its own code
    assert ((directions @ quantizer.codes().T).amax(dim=1) > 0.99).all()
    torch.testing.assert_close(quantizer.usage, torch.full((5,), 0.2))
    with pytest.raises(ValueError, match="at least 5 latents"):
        quantizer.fit_kmeans(latents[:3])


def test_unquantised_training_passes_the_latents_and_no_codebook_loss(model):
    model.train()
    out = model(pixels(), quantise=False)
    assert float(out.losses.codebook) == 0 and float(out.losses.commitment) == 0
    assert model.quantizer.restarts == 0 and out.ids.shape == (3, 4, 4)
    out.losses.reconstruction.backward()
    assert model.quantizer.codebook.weight.grad is None  # the codebook waits for k-means
    assert model.encoder.layers[1].weight.grad.abs().sum() > 0
    assert model.latents(pixels()).shape == (3 * 16, TINY.code_dim)


def test_dead_codes_restart_under_bf16_autocast(model):
    """On a CPU with AVX-512-BF16, `--precision auto` trains under bf16 autocast: the stash is bf16, the codebook
    stays fp32, and a restart must still write into it (it once raised a dtype mismatch at the first restart)."""
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(pixels(8))
        with torch.no_grad():
            model.quantizer.usage.zero_()
            model.quantizer.usage[0] = 1.0
        model(pixels(8, seed=1))
    assert model.quantizer.codebook.weight.dtype == torch.float32
    assert model.quantizer.restarts == TINY.codebook_size - 1


def test_usage_tracks_the_assignments(model):
    model.train()
    out = model(pixels(8))
    counts = torch.bincount(out.ids.flatten(), minlength=TINY.codebook_size).float()
    expected = 0.99 / TINY.codebook_size + 0.01 * counts / counts.sum()
    torch.testing.assert_close(model.quantizer.usage, expected)


def test_local_tokens_see_and_draw_only_their_own_patch():
    """Changing one patch of the image changes that patch's id and pixels alone, and training still works."""
    import dataclasses

    torch.manual_seed(0)
    local = VQModel(dataclasses.replace(TINY, local_tokens=True)).eval()
    x = pixels(batch=2)
    changed = x.clone()
    changed[:, :, :4, :4] = 0.5  # the top-left patch: downsample 4 → 4×4 ids
    ids, ids_changed = local.encode(x), local.encode(changed)
    assert torch.equal(ids[:, 1:], ids_changed[:, 1:]) and torch.equal(ids[:, 0, 1:], ids_changed[:, 0, 1:])
    other = ids.clone()
    other[:, 0, 0] = (ids[:, 0, 0] + 1) % TINY.codebook_size
    difference = (local.decode(ids) - local.decode(other)).abs()
    assert difference[:, :, :4, :4].amax() > 0 and difference[:, :, 4:].amax() == 0 and difference[:, :, :, 4:].amax() == 0
    # The same patch gets the same id wherever it sits.
    tiled = x[:1, :, :4, :4].repeat(1, 1, 4, 4)
    assert local.encode(tiled).unique().numel() == 1
    # An ordinary model's tokens see their neighbours: its top-left patch's change reaches the next patch's pixels.
    wide = VQModel(TINY).eval()
    assert (wide.decode(ids) - wide.decode(other))[:, :, :4, 4:8].abs().amax() > 0
    local.train()
    local(x).losses.reconstruction.backward()
    assert local.encoder.layers[1].weight.grad is not None


def test_save_and_load_round_trip_is_bit_exact(model, tmp_path):
    model.train()
    model(pixels(8))  # moves the usage buffer away from its initial value
    model.save_pretrained(tmp_path)
    loaded = VQModel.from_pretrained(tmp_path)
    assert loaded.config == TINY
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    model.eval()
    x = pixels()
    assert torch.equal(model.encode(x), loaded.encode(x))
    assert torch.equal(model.decode(model.encode(x)), loaded.decode(loaded.encode(x)))
    assert json.loads((tmp_path / "config.json").read_text())["codebook_size"] == 16


def test_a_checkpoint_of_another_config_is_refused(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["codebook_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="saved from another config"):
        VQModel.from_pretrained(tmp_path)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        VQModel.from_pretrained(tmp_path / "nowhere")


def test_ids_outside_the_codebook_are_refused(model):
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model.decode(torch.full((1, 4, 4), 16))
    with pytest.raises(ValueError, match=r"\(B, 4, 4\)"):
        model.decode(torch.zeros(1, 5, 4, dtype=torch.long))


def test_pixels_of_the_wrong_size_are_refused_with_the_fix(model):
    with pytest.raises(ValueError, match="to_tensor"):
        model.encode(torch.zeros(1, 3, 32, 32))


def test_config_round_trip_and_validation(tmp_path):
    TINY.save(tmp_path)
    assert VQConfig.load(tmp_path) == TINY
    with pytest.raises(ConfigError, match="downsample"):
        VQConfig(downsample=16, channels=(64, 128), stem=4).validate()
    with pytest.raises(ConfigError, match="multiple"):
        VQConfig(image_size=60).validate()
    (tmp_path / "config.json").write_text(json.dumps({**TINY.to_dict(), "colour": 1}))
    with pytest.raises(ConfigError, match="unknown \\['colour'\\]"):
        VQConfig.load(tmp_path)


def test_the_same_class_scales_to_256_px_by_config_alone():
    config = VQConfig(image_size=256, downsample=16, codebook_size=64, code_dim=8, channels=(16, 16, 32), stem=4,
                      groups=8)
    vq = VQModel(config)
    ids = vq.encode(torch.zeros(1, 3, 256, 256))
    assert ids.shape == (1, 16, 16)
    assert vq.decode(ids).shape == (1, 3, 256, 256)


def test_pixels_convert_any_mode_and_size():
    from PIL import Image

    images = [Image.new("L", (40, 20), 255), Image.new("RGBA", (16, 16), (255, 0, 0, 128))]
    batch = to_tensor(images, 16)
    assert batch.shape == (2, 3, 16, 16) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(batch[0], torch.ones(3, 16, 16))  # white stays white after crop and resize
    back = to_pil(batch)
    assert back[1].size == (16, 16) and back[1].getpixel((0, 0)) == (255, 0, 0)
