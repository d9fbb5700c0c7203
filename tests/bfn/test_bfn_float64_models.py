"""BFN and ParamReL in float64 (``model.double()``) and in half precision: the flow state follows the
parameters' dtype (docs/kernels/bfn.md#precision, docs/architecture.md#inputs), where the networks were
fed float32 and ``double()`` ended in PyTorch's "mat1 and mat2 must have the same dtype".

Checked here: every public entry runs in float64 and returns float64; a float64 copy of a float32 model
gives the float32 values to float32 round-off at a fixed seed (Philox draws agree across dtypes);
torch.autograd.gradcheck of the loss in float64 (w.r.t. the data for the delta output, w.r.t. the output
layer for the fused discretised / discrete kernels' float64 backward, and through ParamReL's encoder);
float32 values equal those the code gave before this change (recorded at the commit before it)."""

import copy

import pytest
import torch

from diffrep.bfn.config import BFNDataConfig, unet_io
from diffrep.bfn.flows import state_dtype
from diffrep.bfn.losses import loss_dtype
from diffrep.bfn.model import BFN, BFNConfig
from diffrep.methods.paramrel import ParamReL
from diffrep.nn.unet import UNetConfig
from diffrep.recipes.paramrel import paramrel_config

DATA = ("continuous", "discretised", "discrete")


def _bfn(data, time_loss="continuous", seed=0):
    torch.manual_seed(seed)
    kw = dict(loss_steps=4) if time_loss == "discrete" else {}
    b = BFNDataConfig(data=data, image_size=8, channels=1, num_bins=16, sigma1=0.1, time_loss=time_loss, **kw)
    unet = UNetConfig(**{**unet_io(b), "model_channels": 8, "channel_mult": (1,), "num_res_blocks": 1,
                         "attention_resolutions": (), "middle_attention": False, "num_groups": 4})
    return BFN(BFNConfig(bfn=b, unet=unet, sample_steps=3, report_reconstruction=True))


def _paramrel(data, seed=0, **kw):
    torch.manual_seed(seed)
    b = BFNDataConfig(data=data, image_size=8, channels=1, num_bins=16, sigma1=0.1)
    return ParamReL(paramrel_config(b, 4, 8, (1,), res_blocks=1, groups=4, sample_steps=3,
                                    report_reconstruction=True, **kw))


def _images(seed=1):
    torch.manual_seed(seed)
    return torch.rand(3, 1, 8, 8) * 2 - 1


def _gen():
    return torch.Generator().manual_seed(3)


# ---------------------------------------------------------------- float32 unchanged
# float32 values of the builders above at these seeds, printed by the code before float64 support
# (the commit before this file). The checks are exact where an algebraic identity holds (float64
# images into a float32 model) and to a few ulp against these records, which conv kernels of another
# CPU may round differently.
RECORDED = {
    ("bfn", "continuous", "loss"): 138.4999237060547,
    ("bfn", "discretised", "loss"): 93.10364532470703,
    ("bfn", "discrete", "loss"): 210.0025634765625,
    ("bfn", "discretised", "loss_n"): 108.93707275390625,
    ("pr", "continuous", "loss"): 138.50096130371094,
    ("pr", "discrete", "loss"): 210.0036163330078,
    ("pr", "continuous", "encode"): 2.200927257537842,
    ("pr", "discrete", "encode"): 2.0897579193115234,
}


def _recorded_values():
    x = _images()
    out = {}
    for data in DATA:
        out[("bfn", data, "loss")] = _bfn(data).loss(x, generator=_gen())["loss"]
    out[("bfn", "discretised", "loss_n")] = _bfn("discretised", "discrete").loss(x, generator=_gen())["loss"]
    for data in ("continuous", "discrete"):
        p = _paramrel(data)
        out[("pr", data, "loss")] = p.loss(x, generator=_gen())["loss"]
        out[("pr", data, "encode")] = p.encode(x).abs().sum()
    return out


def test_float32_values_are_the_recorded_ones():
    for key, got in _recorded_values().items():
        assert got.dtype == torch.float32, key
        assert got.item() == pytest.approx(RECORDED[key], rel=2e-6), key


@pytest.mark.parametrize("data", DATA)
def test_float64_images_give_a_float32_model_its_float32_values_exactly(data):
    # before, continuous data in float64 ran the flow in float64 (and L^r came back float64)
    x = _images()
    m = _bfn(data)
    a, b = m.loss(x, generator=_gen()), m.loss(x.double(), generator=_gen())
    for k in a:
        assert b[k].dtype == torch.float32 and torch.equal(a[k], b[k]), k
    p = _paramrel(data)
    assert torch.equal(p.encode(x), p.encode(x.double()))
    assert torch.equal(p.reverse_sample(x).subcode.params, p.reverse_sample(x.double()).subcode.params)


# ---------------------------------------------------------------- float64 runs and agrees
@pytest.mark.parametrize("data,time_loss", [(d, "continuous") for d in DATA] + [(d, "discrete") for d in DATA],
                         ids=[f"{d}-{tl}" for tl in ("Linf", "Ln") for d in DATA])
def test_float64_bfn_runs_in_float64_and_agrees_with_float32(data, time_loss):
    x = _images()
    m32 = _bfn(data, time_loss)
    m64 = copy.deepcopy(m32).double()
    a, b = m32.loss(x, generator=_gen()), m64.loss(x, generator=_gen())
    for k in ("loss", "loss_per_dim", "recon_loss"):
        assert b[k].dtype == torch.float64, k
        if data == "discrete" and time_loss == "discrete" and k != "recon_loss":
            continue  # its Monte-Carlo sender draws come from torch.randn, whose streams differ by dtype
        assert b[k].item() == pytest.approx(a[k].item(), rel=1e-5), k
    s32, s64 = m32.sample(2, generator=_gen()), m64.sample(2, generator=_gen())
    assert s64.dtype == torch.float64 and s64.shape == s32.shape
    if data == "continuous":  # Philox sender noise: the same draws in both dtypes
        assert torch.allclose(s64, s32.double(), atol=1e-5)
    b["loss"].backward()
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in m64.parameters())


@pytest.mark.parametrize("data,kw", [("continuous", {}), ("discretised", {"encoder": "hyper"}),
                                     ("discrete", {"cond": "xattn", "xattn_tokens": 2}),
                                     ("continuous", {"encoder_input": "x", "z_source": "prior_fixed"})],
                         ids=["continuous", "discretised-hyper", "discrete-xattn", "continuous-x-encoder"])
def test_float64_paramrel_runs_in_float64_and_agrees_with_float32(data, kw):
    x = _images()
    p32 = _paramrel(data, **kw)
    p64 = copy.deepcopy(p32).double()
    a, b = p32.loss(x, generator=_gen()), p64.loss(x, generator=_gen())
    for k in a:
        assert b[k].dtype == torch.float64, k
        assert b[k].item() == pytest.approx(a[k].item(), rel=1e-5, abs=1e-6), k
    z32, z64 = p32.encode(x), p64.encode(x)
    assert z64.dtype == torch.float64 and torch.allclose(z64, z32.double(), atol=1e-5)
    r32, r64 = p32.reverse_sample(x), p64.reverse_sample(x)
    assert r64.z.dtype == torch.float64 and torch.allclose(r64.z, r32.z.double(), atol=1e-5)
    s64 = p64.sample(2, generator=_gen())
    assert s64.dtype == torch.float64 and s64.shape == (2, 1, 8, 8) and bool(torch.isfinite(s64).all())
    for out in (p64.reconstruct(x), p64.traverse(x[:1], dims=[0], num_values=2)):
        assert out.dtype == torch.float64


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("dtype,want", [(torch.float64, torch.float64), (torch.bfloat16, torch.float32)],
                         ids=["float64", "bfloat16"])
def test_the_networks_read_flow_states_and_latents_of_the_state_dtype(data, dtype, want):
    # a flow state left in float32 (the discrete flow's old tt.float()) would still give a float64 loss,
    # and a bf16 model's state must stay float32 (images are not rounded to bf16 before the flow)
    x = _images()
    seen, latents = [], []
    m = _bfn(data).to(dtype)
    predict = m.predict
    m.predict = lambda state, t: seen.append(state.params.dtype) or predict(state, t)
    m.loss(x, generator=_gen())
    m.sample(2, generator=_gen())
    p = _paramrel(data).to(dtype)
    decode_net, posterior = p.decode_net, p.posterior
    p.decode_net = lambda state, t, z, **kw: (seen.append(state.params.dtype) or latents.append(z.dtype)
                                              or decode_net(state, t, z, **kw))  # kw: the chains' check_time
    p.posterior = lambda state, t, **kw: seen.append(state.params.dtype) or posterior(state, t, **kw)
    p.loss(x, generator=_gen())
    p.encode(x)
    for source in ("encoder", "prior_fixed", "prior_per_step"):
        p.sample(2, generator=_gen(), z_source=source)
    assert len(seen) > 20 and set(seen) == {want}
    assert set(latents) <= {want, dtype}  # prior draws in the state's dtype, the encoder's z in the network's


def test_flow_sample_takes_the_state_dtype():
    from diffrep.bfn.flows import ContinuousFlow, DiscreteFlow

    x, t = _images(), torch.full((3,), 0.5, dtype=torch.float64)
    cont, disc = ContinuousFlow(0.1), DiscreteFlow(2, 3.0)
    assert cont.sample(x, t).params.dtype == torch.float32  # None: the data's dtype
    assert cont.sample(x, t, dtype=torch.float64).params.dtype == torch.float64
    assert disc.sample(x, t).params.dtype == torch.float32  # None: float32, as before
    assert disc.sample(x, t, dtype=torch.float64).params.dtype == torch.float64
    a = cont.sample(x, t, torch.Generator().manual_seed(0))
    b = cont.sample(x, t, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(a.params.double(), b.params, atol=1e-6)  # the same Philox draws


# ---------------------------------------------------------------- gradcheck in float64
class _Loss(torch.nn.Module):
    """The model's loss as a module's forward, so that torch.func.functional_call can swap one parameter."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.loss(x, generator=_gen())["loss"]


def _perturbed(model):
    """The zero-initialised output layers made non-zero: at zero a gradient check would only see them."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_gradcheck_of_the_delta_loss_with_respect_to_the_data():
    m = _perturbed(_bfn("continuous").double())
    x = _images()[:2].double().mul(0.9).requires_grad_()  # inside (-1, 1): away from the output's clip
    assert torch.autograd.gradcheck(lambda v: m.loss(v, generator=_gen())["loss"], (x,))


@pytest.mark.parametrize("data", ["discretised", "discrete"])
def test_gradcheck_of_the_fused_losses_with_respect_to_the_output_layer(data):
    # the fused native kernels (disc_cts_loss, discrete_cts_loss) return their analytic float64 gradient
    wrapped = _Loss(_perturbed(_bfn(data).double()))
    x = _images()[:2].double()
    name = "model.unet.out.2.bias"
    w = dict(wrapped.named_parameters())[name].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: torch.func.functional_call(wrapped, {name: v}, (x,)), (w,))


def test_gradcheck_of_the_paramrel_objective_through_the_encoder():
    # KL, MMD (native mmd2 in float64), the reparameterisation and the decoder's conditioning on z
    wrapped = _Loss(_perturbed(_paramrel("continuous", gamma_mi=0.5, lambda_agg=0.6).double()))
    x = _images()[:2].double()
    name = "model.encoder.head.bias"
    w = dict(wrapped.named_parameters())[name].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: torch.func.functional_call(wrapped, {name: v}, (x,)), (w,))


# ---------------------------------------------------------------- half precision, dtype rules
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_keep_the_flow_and_losses_in_float32(dtype):
    x = _images()
    m32 = _bfn("discretised")
    m16 = copy.deepcopy(m32).to(dtype)
    a, b = m32.loss(x, generator=_gen()), m16.loss(x, generator=_gen())
    assert b["loss"].dtype == torch.float32 and b["loss"].item() == pytest.approx(a["loss"].item(), rel=0.05)
    assert m16.sample(2, generator=_gen()).dtype == torch.float32
    p16 = _paramrel("discrete").to(dtype)
    assert p16.loss(x, generator=_gen())["loss"].dtype == torch.float32


def test_dtype_rules():
    assert state_dtype(torch.float64) == torch.float64
    assert all(state_dtype(d) == torch.float32 for d in (torch.float32, torch.float16, torch.bfloat16))
    with pytest.raises(TypeError, match="param_dtype"):
        state_dtype(torch.int64)
    half, f64 = torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1, dtype=torch.float64)
    assert loss_dtype(half) == torch.float32 and loss_dtype((half, f64)) == torch.float64
    assert loss_dtype(torch.zeros(1)) == torch.float32
