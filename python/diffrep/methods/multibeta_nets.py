"""beta-conditioned networks of the denoising multi-beta VAE (docs/methods/multibeta.md#networks).

The paper (Uppal et al. 2025, Sec. 3.1, Eq. 2-3) conditions the encoder f_phi(x, beta) and the decoder
g_theta(z, beta) on beta but does not say how (App. C is not in the text). Here beta is embedded as
a diffusion time (Sec. 4.2: beta == t): a sinusoidal embedding of ``beta_embed_scale`` x beta, then a
two-layer MLP (:class:`BetaEmbedding`), and enters

- the disentanglement_lib convolutional nets (Locatello et al. 2019 Table 1, the layout of
  :class:`diffrep.nn.encoders.ConvEncoder` / ``ConvDecoder``), which have no residual blocks, either by
  ``conditioning="film"``: a per-layer FiLM h <- h (1 + s_l(beta)) + b_l(beta) after every hidden layer
  (zero-initialised, so the nets start as the unconditioned ones), or by ``"concat"``: the embedding
  concatenated to the flattened conv features (encoder) and to z (decoder);
- the residual nets (``arch="resnet"``, CelebA 64 and the spatial latents of Table 3) through the
  scale-shift norm (AdaGN, i.e. FiLM) of every :class:`diffrep.nn.layers.ResBlock`.

:class:`LatentMLP` is the latent-diffusion network for vector latents: a residual MLP with a time
embedding and two heads (eps_hat, Delta_hat) (Sec. 4.2: "the U-Net ... produce[s] two outputs"; for
spatial latents :class:`diffrep.nn.unet.UNet` with ``num_outputs=2`` is used instead).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import positive_float, positive_int
from ..nn.encoders import DLIB_CONV_KERNELS, dlib_stride2_conv
from ..nn.layers import Downsample, GroupNorm, ResBlock, Upsample, _timestep_embedding, timestep_embedding

__all__ = ["BetaEmbedding", "FiLM", "BetaConvEncoder", "BetaConvDecoder", "BetaResEncoder", "BetaResDecoder",
           "LatentMLP", "conv_channels"]


def conv_channels(image_size: int) -> list[int]:
    """The disentanglement_lib conv widths: 32, 32, 64, 64 at 64x64 (three convs at 32x32)."""
    if isinstance(image_size, bool) or image_size not in (32, 64):  # a KeyError named the bare size
        raise ValueError(f"image_size must be 32 or 64 (the disentanglement_lib conv stack), got {image_size!r}")
    return [32, 32, 64, 64][: {32: 3, 64: 4}[image_size]]


class BetaEmbedding(nn.Module):
    """beta [B] -> [B, dim]: sinusoidal embedding of ``scale`` x beta (Vaswani et al. 2017), Linear-SiLU-Linear."""

    def __init__(self, dim: int, scale: float = 1000.0, base: int = 128):
        super().__init__()
        positive_int(dim, "dim")
        self.scale, self.base = positive_float(scale, "scale"), positive_int(base, "base")
        self.mlp = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        w = self.mlp[0].weight
        return self.mlp(timestep_embedding(beta * self.scale, self.base).to(w.dtype))

    def _embed_grid(self, beta: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without the finiteness read of beta: for times built from a finite grid (the latent
        denoiser's i tau), so its chain reads nothing back per step."""
        w = self.mlp[0].weight
        return self.mlp(_timestep_embedding(beta * self.scale, self.base, check_finite=False).to(w.dtype))


class FiLM(nn.Module):
    """h <- h (1 + s(e)) + b(e), (s, b) = Linear(e); zero-initialised (identity at start)."""

    def __init__(self, emb_dim: int, channels: int):
        super().__init__()
        positive_int(emb_dim, "emb_dim")
        positive_int(channels, "channels")
        self.proj = nn.Linear(emb_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        s, b = self.proj(e).to(h.dtype).chunk(2, dim=1)
        shape = (h.shape[0], -1) + (1,) * (h.dim() - 2)
        return h * (1 + s.reshape(shape)) + b.reshape(shape)


class BetaConvEncoder(nn.Module):
    """x [B, C, S, S] (S = 32 or 64), beta [B] -> f_phi(x, beta) [B, d] (Locatello et al. 2019 encoder, mean head only:
    the latent std sigma_beta is a table, Eq. 3). ``conv_kernels``: each stride-2 conv's kernel (disentanglement_lib
    ``conv_encoder``: 4, 4, 2, 2; the 32 px net uses the first three)."""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, hidden: int, emb_dim: int,
                 conditioning: str, beta_embed_scale: float, conv_kernels: tuple[int, ...] = DLIB_CONV_KERNELS):
        super().__init__()
        self.film = conditioning == "film"
        self.embed = BetaEmbedding(emb_dim, beta_embed_scale)
        chans = conv_channels(image_size)
        self.convs = nn.ModuleList()
        cin = in_channels
        for c, k in zip(chans, conv_kernels):
            self.convs.append(dlib_stride2_conv(cin, c, k))
            cin = c
        self.conv_films = nn.ModuleList(FiLM(emb_dim, c) for c in chans) if self.film else None
        self.fc = nn.Linear(cin * 16 + (0 if self.film else emb_dim), hidden)
        self.fc_film = FiLM(emb_dim, hidden) if self.film else None
        self.head = nn.Linear(hidden, latent_dim)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        e = self.embed(beta)
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if self.film:
                h = self.conv_films[i](h, e)
            h = self.act(h)
        h = h.flatten(1)
        if not self.film:
            h = torch.cat([h, e.to(h.dtype)], dim=1)
        h = self.fc(h)
        if self.film:
            h = self.fc_film(h, e)
        return self.head(self.act(h))


class BetaConvDecoder(nn.Module):
    """z [B, d], beta [B] -> g_theta(z, beta) [B, C, S, S] (the mirror of :class:`BetaConvEncoder`)."""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, hidden: int, emb_dim: int,
                 conditioning: str, beta_embed_scale: float):
        super().__init__()
        self.film = conditioning == "film"
        self.embed = BetaEmbedding(emb_dim, beta_embed_scale)
        chans = conv_channels(image_size)[::-1]
        self.c0 = chans[0]
        self.fc1 = nn.Linear(latent_dim + (0 if self.film else emb_dim), hidden)
        self.fc2 = nn.Linear(hidden, chans[0] * 16)
        outs = chans[1:] + [in_channels]
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(chans, outs))
        if self.film:
            self.films = nn.ModuleList([FiLM(emb_dim, hidden), FiLM(emb_dim, chans[0] * 16)]
                                       + [FiLM(emb_dim, c) for c in outs[:-1]])
        self.act = nn.ReLU()

    def last_layer(self) -> torch.Tensor:
        return self.deconvs[-1].weight

    def forward(self, z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        e = self.embed(beta)
        h = z if self.film else torch.cat([z, e.to(z.dtype)], dim=1)
        h = self.fc1(h)
        if self.film:
            h = self.films[0](h, e)
        h = self.fc2(self.act(h))
        if self.film:
            h = self.films[1](h, e)
        h = self.act(h).reshape(z.shape[0], self.c0, 4, 4)
        last = len(self.deconvs) - 1
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h)
            if i < last:
                if self.film:
                    h = self.films[2 + i](h, e)
                h = self.act(h)
        return h


class BetaResEncoder(nn.Module):
    """x -> f_phi(x, beta): ADM residual blocks whose scale-shift norm reads the beta embedding (FiLM), a
    down-sampling per level; a vector latent (flatten + Linear to d) or a spatial one (3x3 conv to
    ``latent_channels`` at resolution S / 2^(levels - 1))."""

    def __init__(self, in_channels: int, image_size: int, model_channels: int, channel_mult, num_res_blocks: int,
                 num_groups: int, emb_dim: int, beta_embed_scale: float, latent: str, latent_dim: int,
                 latent_channels: int):
        super().__init__()
        self.embed = BetaEmbedding(emb_dim, beta_embed_scale)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.blocks = nn.ModuleList()
        ch = model_channels
        for level, m in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.blocks.append(ResBlock(ch, model_channels * m, emb_dim, num_groups=num_groups, zero_init=False))
                ch = model_channels * m
            if level != len(channel_mult) - 1:
                self.blocks.append(Downsample(ch))
        self.blocks.append(ResBlock(ch, ch, emb_dim, num_groups=num_groups, zero_init=False))
        self.norm_out = nn.Sequential(GroupNorm(num_groups, ch), nn.SiLU())
        side = image_size // 2 ** (len(channel_mult) - 1)
        self.latent = latent
        self.out = (nn.Linear(ch * side * side, latent_dim) if latent == "vector"
                    else nn.Conv2d(ch, latent_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        e = self.embed(beta)
        h = self.conv_in(x)
        for blk in self.blocks:
            h = blk(h, e) if isinstance(blk, ResBlock) else blk(h)
        h = self.norm_out(h)
        return self.out(h.flatten(1) if self.latent == "vector" else h)


class BetaResDecoder(nn.Module):
    """z (vector [B, d] or spatial [B, c, s, s]), beta -> g_theta(z, beta) [B, C, S, S], the mirror of
    :class:`BetaResEncoder` (nearest up-sampling + 3x3 conv per level)."""

    def __init__(self, in_channels: int, image_size: int, model_channels: int, channel_mult, num_res_blocks: int,
                 num_groups: int, emb_dim: int, beta_embed_scale: float, latent: str, latent_dim: int,
                 latent_channels: int):
        super().__init__()
        self.embed = BetaEmbedding(emb_dim, beta_embed_scale)
        top = model_channels * channel_mult[-1]
        self.side = image_size // 2 ** (len(channel_mult) - 1)
        self.top, self.latent = top, latent
        self.inp = (nn.Linear(latent_dim, top * self.side * self.side) if latent == "vector"
                    else nn.Conv2d(latent_channels, top, 3, padding=1))
        self.blocks = nn.ModuleList([ResBlock(top, top, emb_dim, num_groups=num_groups, zero_init=False)])
        ch = top
        for level, m in list(enumerate(channel_mult))[::-1]:
            for _ in range(num_res_blocks):
                self.blocks.append(ResBlock(ch, model_channels * m, emb_dim, num_groups=num_groups, zero_init=False))
                ch = model_channels * m
            if level:
                self.blocks.append(Upsample(ch))
        self.norm_out = nn.Sequential(GroupNorm(num_groups, ch), nn.SiLU())
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    def last_layer(self) -> torch.Tensor:
        return self.conv_out.weight

    def forward(self, z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        e = self.embed(beta)
        h = self.inp(z)
        if self.latent == "vector":
            h = h.reshape(z.shape[0], self.top, self.side, self.side)
        for blk in self.blocks:
            h = blk(h, e) if isinstance(blk, ResBlock) else blk(h)
        return self.conv_out(self.norm_out(h))


class _MLPBlock(nn.Module):
    """h + W2 act(FiLM_t(W1 LayerNorm(h)))."""

    def __init__(self, width: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.film = nn.Linear(emb_dim, 2 * width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        s, b = self.film(e).chunk(2, dim=1)
        return h + self.fc2(self.act(self.fc1(self.norm(h)) * (1 + s) + b))


class LatentMLP(nn.Module):
    """(z_t [B, d], t [B]) -> (eps_hat, Delta_hat), each [B, d]: a residual MLP whose blocks read a time
    embedding (sinusoidal of ``time_scale`` x t, then an MLP) by FiLM; one output layer of width 2d,
    split in two (the two heads of Sec. 4.2)."""

    def __init__(self, latent_dim: int, hidden: int, depth: int, time_scale: float):
        super().__init__()
        for name, v in (("latent_dim", latent_dim), ("hidden", hidden), ("depth", depth)):
            positive_int(v, name)
        positive_float(time_scale, "time_scale")
        self.embed = BetaEmbedding(hidden, time_scale)
        self.inp = nn.Linear(latent_dim, hidden)
        self.blocks = nn.ModuleList(_MLPBlock(hidden, hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent_dim))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(z, self.embed(t))

    def _forward_grid(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` at times built from a finite grid: t's finiteness is not read back (no host read)."""
        return self._run(z, self.embed._embed_grid(t))

    def _run(self, z: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.inp(z)
        for blk in self.blocks:
            h = blk(h, e)
        eps, delta = self.out(h).chunk(2, dim=1)
        return eps, delta
