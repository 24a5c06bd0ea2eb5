"""The VQ-VAE image tokenizer: pixels ↔ a grid of codebook ids.

    vq = VQModel.from_pretrained("runs/vq")
    ids = vq.encode(pixels)            # (B, 3, H, W) in [-1, 1] → (B, h, w) int64
    pixels = vq.decode(ids)            # (B, h, w) → (B, 3, H, W) in [-1, 1]
    out = vq(pixels)                   # VQOutput(reconstruction, ids, losses) for training

The shape follows LlamaGen's VQ model: a convolutional encoder and decoder
with residual blocks and GroupNorm, and a codebook of l2-normalised codes
(nearest code = highest cosine similarity), which keeps codes on the unit
sphere where they stay in use. Codes that fall out of use are restarted on
recent encoder outputs. The same class serves 64 and 72 px scenes and 256 px photos;
only `VQConfig` changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from assistant.config import ConfigError, VQConfig, first_line, unreadable

WEIGHTS_NAME = "model.safetensors"


class VQLosses(NamedTuple):
    reconstruction: Tensor  # mean (x̂ − x)², pixels in [-1, 1]: what PSNR measures
    edge: Tensor  # mean |∇x̂ − ∇x| over horizontal and vertical neighbour differences
    codebook: Tensor  # ‖q − sg(z)‖²: pulls codes toward the encoder outputs
    commitment: Tensor  # β‖z − sg(q)‖²: keeps the encoder near its codes


class VQOutput(NamedTuple):
    reconstruction: Tensor  # (B, 3, H, W)
    ids: Tensor  # (B, h, w) int64
    losses: VQLosses


class ResBlock(nn.Module):
    """x + conv(silu(norm(conv(silu(norm(x)))))), keeping the width; widths change between stages."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _stage(channels: int, blocks: int, groups: int) -> list[nn.Module]:
    return [ResBlock(channels, groups) for _ in range(blocks)]


class Encoder(nn.Module):
    """(B, 3, H, W) → (B, code_dim, h, w), unnormalised."""

    def __init__(self, config: VQConfig):
        super().__init__()
        c = config.channels
        layers: list[nn.Module] = [nn.PixelUnshuffle(config.stem), nn.Conv2d(3 * config.stem ** 2, c[0], 3, padding=1)]
        for level, width in enumerate(c):
            layers += _stage(width, config.encoder_blocks, config.groups)
            if level + 1 < len(c):
                layers += [nn.Conv2d(width, c[level + 1], 3, stride=2, padding=1)]  # halve the resolution
        layers += [nn.GroupNorm(config.groups, c[-1]), nn.SiLU(), nn.Conv2d(c[-1], config.code_dim, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.layers(pixels)


class Decoder(nn.Module):
    """(B, code_dim, h, w) → (B, 3, H, W)."""

    def __init__(self, config: VQConfig):
        super().__init__()
        c = config.channels[::-1]  # coarsest first
        layers: list[nn.Module] = [nn.Conv2d(config.code_dim, c[0], 3, padding=1)]
        for level, width in enumerate(c):
            layers += _stage(width, config.decoder_blocks, config.groups)
            if level + 1 < len(c):  # double the resolution
                # A 1×1 convolution to 4× the channels, then PixelShuffle: 9× cheaper than upsampling and a 3×3
                # convolution at the finer resolution, and it reconstructed scenes better in the same time.
                layers += [nn.Conv2d(width, 4 * c[level + 1], 1), nn.PixelShuffle(2)]
        # The head draws each position's stem×stem pixels; a hidden layer lets it draw sharp corners
        # inside that patch (a plain linear head rounds a small cross into a blob).
        layers += [nn.GroupNorm(config.groups, c[-1]), nn.SiLU(), nn.Conv2d(c[-1], 2 * c[-1], 3, padding=1),
                   nn.SiLU(), nn.Conv2d(2 * c[-1], 3 * config.stem ** 2, 1), nn.PixelShuffle(config.stem)]
        self.layers = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        return self.layers(codes)


class Quantizer(nn.Module):
    """Nearest l2-normalised code, with a straight-through gradient, usage tracking and dead-code restarts."""

    usage_decay = 0.99  # EMA over roughly the last 100 training batches
    dead_fraction = 0.03  # a code used less than this × its fair share (1 / K) is dead
    stash_size = 4096  # recent encoder outputs kept to restart dead codes on

    def __init__(self, codebook_size: int, code_dim: int, commitment: float):
        super().__init__()
        self.commitment = commitment
        self.codebook = nn.Embedding(codebook_size, code_dim)
        nn.init.normal_(self.codebook.weight)
        # Fraction of recent assignments that went to each code (EMA); saved with the weights.
        self.register_buffer("usage", torch.full((codebook_size,), 1.0 / codebook_size))
        self._stash: Tensor | None = None
        self._stash_error: Tensor | None = None  # how badly each stashed latent's nearest code fits it
        self.restarts = 0

    def codes(self) -> Tensor:
        return F.normalize(self.codebook.weight, dim=-1)  # (K, D)

    def lookup(self, ids: Tensor) -> Tensor:
        """(B, h, w) ids → (B, D, h, w) normalised codes."""
        return self.codes()[ids].permute(0, 3, 1, 2)

    def nearest(self, z: Tensor) -> Tensor:
        """(B, D, h, w) normalised latents → (B, h, w) ids of the closest codes."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B·h·w, D)
        ids = (flat @ self.codes().T).argmax(dim=-1)
        return ids.view(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, latents: Tensor, quantise: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, D, h, w) → (quantised with straight-through gradient, ids, codebook loss, commitment loss).

        With quantise=False the normalised latents pass as they are (an autoencoder's warm-up before
        `fit_kmeans`), with the ids of their nearest codes and zero codebook losses."""
        if not quantise:
            z = F.normalize(latents, dim=1)
            zero = z.new_zeros(())
            return z, self.nearest(z.detach()), zero, zero
        if self.training:
            self._restart_dead_codes()  # before this step's graph uses the codebook
        z = F.normalize(latents, dim=1)
        ids = self.nearest(z)
        q = self.lookup(ids)
        codebook_loss = F.mse_loss(q, z.detach())
        commitment_loss = self.commitment * F.mse_loss(z, q.detach())
        if self.training:
            self._track(z.detach(), ids)
        # Straight-through: the value is exactly q; the decoder's gradient flows both to z, as if quantising
        # were the identity, and to the chosen codes, which thus learn from the reconstruction too.
        return q + (z - z.detach()), ids, codebook_loss, commitment_loss

    @torch.no_grad()
    def _track(self, z: Tensor, ids: Tensor) -> None:
        counts = torch.bincount(ids.flatten(), minlength=self.usage.numel()).float()
        self.usage.mul_(self.usage_decay).add_(counts / counts.sum(), alpha=1 - self.usage_decay)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        keep = torch.randperm(len(flat), device=flat.device)[:self.stash_size]
        self._stash = flat[keep]
        # 1 − cosine to the chosen code: 0 for a latent its code fits exactly, large where two kinds of
        # patch share one code.
        self._stash_error = 1 - (self._stash.float() * self.codes()[ids.flatten()[keep]].detach()).sum(-1)

    @torch.no_grad()
    def _restart_dead_codes(self) -> None:
        """Move codes nobody uses onto recent encoder outputs, so every code earns its place."""
        if self._stash is None:
            return
        dead = (self.usage < self.dead_fraction / self.usage.numel()).nonzero().flatten()
        if len(dead) == 0:
            return
        # Restart where the codebook fits worst (k-means++'s seeding): a uniform pick lands mostly on the most
        # common patch (a scene's empty cells), which has its code already, while two rarer patches that share
        # one code stay merged.
        weights = self._stash_error.clamp_min(0) + 1e-6
        picks = self._stash[torch.multinomial(weights, len(dead), replacement=True)]
        # Under bf16 autocast the stash holds bf16 latents; the codebook itself stays fp32.
        self.codebook.weight[dead] = (picks + 0.01 * torch.randn_like(picks)).to(self.codebook.weight.dtype)
        self.usage[dead] = 1.0 / self.usage.numel()  # a grace period before it can be judged dead again
        self.restarts += len(dead)

    @torch.no_grad()
    def fit_kmeans(self, latents: Tensor, iterations: int = 30, generator: torch.Generator | None = None) -> None:
        """Set the codebook to spherical k-means centres of `latents` (N, D), seeded k-means++ style.

        After an unquantised warm-up the encoder's latents fall into clusters, one per kind of patch; codes
        started on those clusters begin with one code per kind, where codes drawn at random start merged and
        may never part."""
        z = F.normalize(latents.float(), dim=-1)
        k = self.codebook.num_embeddings
        if len(z) < k:
            raise ValueError(f"k-means needs at least {k} latents (one per code), got {len(z)}")
        centres = z[torch.randint(len(z), (1,), generator=generator)]
        for _ in range(1, k):  # k-means++: each new centre far from the chosen ones, with probability ∝ distance²
            distance = (1 - (z @ centres.T).amax(dim=1)).clamp_min(0)
            weights = distance.pow(2) + 1e-12
            centres = torch.cat([centres, z[torch.multinomial(weights, 1, generator=generator)]])
        for _ in range(iterations):  # Lloyd's steps on the sphere
            ids = (z @ centres.T).argmax(dim=1)
            sums = torch.zeros_like(centres).index_add_(0, ids, z)
            counts = torch.bincount(ids, minlength=k)
            empty = counts == 0
            centres = torch.where(empty[:, None], centres, F.normalize(sums, dim=-1))
        self.codebook.weight.copy_(centres.to(self.codebook.weight.dtype))
        self.usage.fill_(1.0 / k)

    def used_fraction(self) -> float:
        """The fraction of codes that recent training batches used at all."""
        return float((self.usage >= self.dead_fraction / self.usage.numel()).float().mean())


class VQModel(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config.validate()
        self.encoder = Encoder(config)
        self.quantizer = Quantizer(config.codebook_size, config.code_dim, config.commitment)
        self.decoder = Decoder(config)

    def forward(self, pixels: Tensor, quantise: bool = True) -> VQOutput:
        """The training pass; quantise=False trains encoder and decoder as a plain autoencoder."""
        self._check_pixels(pixels)
        quantised, ids, codebook_loss, commitment_loss = self.quantizer(self._encode(pixels), quantise)
        reconstruction = self._decode(quantised)
        losses = VQLosses(F.mse_loss(reconstruction, pixels), edge_loss(reconstruction, pixels),
                          codebook_loss, commitment_loss)
        return VQOutput(reconstruction, ids, losses)

    @torch.no_grad()
    def latents(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) → (B·h·w, code_dim) normalised encoder outputs, one row per token: what k-means fits."""
        self._check_pixels(pixels)
        z = F.normalize(self._encode(pixels), dim=1)
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, h, w) int64 codebook ids."""
        self._check_pixels(pixels)
        return self.quantizer.nearest(F.normalize(self._encode(pixels), dim=1))

    @torch.no_grad()
    def decode(self, ids: Tensor) -> Tensor:
        """(B, h, w) int64 ids → (B, 3, H, W) pixels in [-1, 1]."""
        self._check_ids(ids)
        return self._decode(self.quantizer.lookup(ids)).clamp(-1, 1)

    def _encode(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) → (B, code_dim, h, w); with local tokens, each patch through the encoder on its own."""
        if not self.config.local_tokens:
            return self.encoder(pixels)
        grid = self.config.grid
        return _join_patches(self.encoder(_split_patches(pixels, grid)), grid)

    def _decode(self, codes: Tensor) -> Tensor:
        """(B, code_dim, h, w) → (B, 3, H, W); with local tokens, each code drawn into its patch on its own."""
        if not self.config.local_tokens:
            return self.decoder(codes)
        grid = self.config.grid
        return _join_patches(self.decoder(_split_patches(codes, grid)), grid)

    def _check_pixels(self, pixels: Tensor) -> None:
        size = self.config.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, size, size):
            raise ValueError(f"pixels must be (B, 3, {size}, {size}) in [-1, 1], got {tuple(pixels.shape)}; "
                             "convert images with assistant.pixels.to_tensor")

    def _check_ids(self, ids: Tensor) -> None:
        grid, k = self.config.grid, self.config.codebook_size
        if ids.ndim != 3 or tuple(ids.shape[1:]) != (grid, grid):
            raise ValueError(f"ids must be (B, {grid}, {grid}), got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"ids must be integers, got {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise ValueError(f"ids must lie in [0, {k}), the codebook's range; got values from "
                             f"{int(ids.min())} to {int(ids.max())}")

    def save_pretrained(self, directory: str | Path) -> Path:
        """config.json + model.safetensors (weights and codebook usage)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
        self.config.save(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> VQModel:
        directory = Path(directory)
        model = cls(VQConfig.load(directory))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise ConfigError(f"{weights} does not exist; pass a directory written by VQModel.save_pretrained")
        try:
            state = load_file(weights, device=map_location)
        except (SafetensorError, OSError) as error:
            raise unreadable(weights, f"{type(error).__name__}: {first_line(error)}",
                             "train the VQ-VAE again (glyph train vqvae)") from None
        expected = model.state_dict()
        wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
        if wrong or set(state) - set(expected):
            raise ConfigError(f"{weights} does not match {directory / 'config.json'}: "
                              f"{len(wrong)} tensor(s) differ, e.g. {wrong[:3]}; it was saved from another config")
        model.load_state_dict(state)
        return model.eval()


def _split_patches(x: Tensor, grid: int) -> Tensor:
    """(B, C, H, W) → (B·grid², C, H/grid, W/grid): the grid's patches as a batch, row by row."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, grid, h // grid, grid, w // grid).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * grid * grid, c, h // grid, w // grid)


def _join_patches(x: Tensor, grid: int) -> Tensor:
    """The inverse of _split_patches: (B·grid², C, h, w) → (B, C, grid·h, grid·w)."""
    n, c, h, w = x.shape
    x = x.reshape(n // (grid * grid), grid, grid, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n // (grid * grid), c, grid * h, grid * w)


def edge_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """L1 between neighbour differences: penalises soft or misplaced edges, which plain L1 forgives."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return F.l1_loss(dx(prediction), dx(target)) + F.l1_loss(dy(prediction), dy(target))
